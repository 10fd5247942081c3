/* aether-agent --render-kubernetes (SPEC.md section 8). */
#ifndef AETHER_K8S_RENDER_H
#define AETHER_K8S_RENDER_H

/* Prints the document for the List in objects and the base document in
 * config. Returns the exit status: 0, or 1 after naming on stderr the
 * objects left out (the document is still printed) or why nothing could
 * be rendered. */
int aeth_k8s_render(const char *objects, const char *config);

#endif /* AETHER_K8S_RENDER_H */
