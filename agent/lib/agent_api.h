/* What the agent and its clients (aetherctl, tests) agree on outside the
 * maps: default paths and the largest document the API takes. */
#ifndef AETHER_AGENT_API_H
#define AETHER_AGENT_API_H

#define AETH_DEFAULT_PIN_DIR "/sys/fs/bpf/aether"
#define AETH_DEFAULT_SOCKET "/run/aether/agent.sock"
#define AETH_CONFIG_MAX_BYTES (64u << 20) /* largest document accepted */

#endif /* AETHER_AGENT_API_H */
