#!/usr/bin/env python3
# A strict stand-in for the Kubernetes API server, for the tests of
# aether-agent --kubernetes. What it models and what not: docs/kubernetes.md.
"""fake_apiserver.py --cert C --key K --addr A --port P --token T --admin-token T2

Serves HTTPS (HTTP/1.1). Bearer tokens: --token is the agent's service
account with exactly the RBAC of deploy/k8s (anything else is 403), and so
is a client certificate signed by --client-ca with CN --client-cert-user;
--admin-token may do everything, and drive the /fake/ controls:
  POST /fake/compact       forget history: a watch resuming from before now
                           gets 410 Gone; open watches are cut
  POST /fake/drop          cut every open watch without ending its stream
  POST /fake/slow?ms=N     delay every response (and each watch) by N ms
Stdlib only.
"""

import argparse
import copy
import json
import re
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (group/version prefix, plural) -> kind, namespaced
RESOURCES = {
    ("/api/v1", "services"): ("Service", "v1", True),
    ("/api/v1", "nodes"): ("Node", "v1", False),
    ("/api/v1", "events"): ("Event", "v1", True),
    ("/apis/discovery.k8s.io/v1", "endpointslices"):
        ("EndpointSlice", "discovery.k8s.io/v1", True),
    ("/apis/coordination.k8s.io/v1", "leases"):
        ("Lease", "coordination.k8s.io/v1", True),
}

# The agent's ClusterRole and Role (deploy/k8s/rbac.yaml): (plural,
# subresource) -> verbs.
AGENT_RBAC = {
    ("services", ""): {"get", "list", "watch"},
    ("services", "status"): {"patch"},
    ("endpointslices", ""): {"get", "list", "watch"},
    ("nodes", ""): {"get", "list", "watch"},
    ("events", ""): {"create", "patch"},
    ("leases", ""): {"get", "create", "update"},
}

PATCH_TYPES = ("application/merge-patch+json",
               "application/strategic-merge-patch+json",
               "application/json-patch+json", "application/apply-patch+yaml")

PATH_RE = re.compile(
    r"^(?P<gv>/api/v1|/apis/[a-z0-9.]+/v1)"
    r"(?:/namespaces/(?P<ns>[a-z0-9-]+))?/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[a-z0-9.-]+))?(?:/(?P<sub>[a-z]+))?$")


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "code": code}


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class Store:
    """Objects by (plural, ns, name), one resourceVersion counter, and the
    history of changes that watches replay."""

    def __init__(self):
        self.cond = threading.Condition()
        self.objs = {}
        self.rv = 100
        self.history = []       # (rv, plural, type, obj)
        self.compacted = 0      # a watch from before this is 410 Gone
        self.cut = 0            # bumped to cut open watches
        self.delay = 0.0

    def _event(self, plural, etype, obj):
        self.history.append((self.rv, plural, etype, copy.deepcopy(obj)))
        self.cond.notify_all()

    def list(self, plural, ns):
        with self.cond:
            items = [copy.deepcopy(o) for (p, n, _), o in
                     sorted(self.objs.items()) if p == plural and
                     (ns is None or n == ns)]
            return items, str(self.rv)

    def get(self, plural, ns, name):
        with self.cond:
            o = self.objs.get((plural, ns or "", name))
            if o is None:
                raise ApiError(404, "NotFound",
                               f'{plural} "{name}" not found')
            return copy.deepcopy(o)

    def create(self, plural, ns, obj):
        name = obj["metadata"]["name"]
        with self.cond:
            if (plural, ns or "", name) in self.objs:
                raise ApiError(409, "AlreadyExists",
                               f'{plural} "{name}" already exists')
            self.rv += 1
            m = obj["metadata"]
            m["resourceVersion"] = str(self.rv)
            m.setdefault("uid", str(uuid.uuid4()))
            m.setdefault("creationTimestamp",
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            if ns:
                m["namespace"] = ns
            self.objs[(plural, ns or "", name)] = obj
            self._event(plural, "ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, plural, ns, name, fn, want_rv=None):
        with self.cond:
            key = (plural, ns or "", name)
            old = self.objs.get(key)
            if old is None:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "Operation cannot be fulfilled"
                               f' on {plural} "{name}": the object has been '
                               "modified; please apply your changes to the "
                               "latest version and try again")
            new = fn(copy.deepcopy(old))
            for k in ("uid", "creationTimestamp", "namespace", "name"):
                if k in old["metadata"]:
                    new["metadata"][k] = old["metadata"][k]
            self.rv += 1
            new["metadata"]["resourceVersion"] = str(self.rv)
            self.objs[key] = new
            self._event(plural, "MODIFIED", new)
            return copy.deepcopy(new)

    def delete(self, plural, ns, name):
        with self.cond:
            old = self.objs.pop((plural, ns or "", name), None)
            if old is None:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
            self.rv += 1
            old["metadata"]["resourceVersion"] = str(self.rv)
            self._event(plural, "DELETED", old)
            return old

    def compact(self):
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            self.history = []
            self.cut += 1
            self.cond.notify_all()

    def drop(self):
        with self.cond:
            self.cut += 1
            self.cond.notify_all()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("apiserver: " + fmt % args + "\n")

    # --- plumbing -------------------------------------------------------
    def send_json(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(400, "BadRequest", "chunked bodies not modelled")
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON: {e}")

    def who(self):
        auth = self.headers.get("Authorization", "")
        if auth == "Bearer " + self.server.admin_token:
            return "admin"
        if auth == "Bearer " + self.server.token:
            return "agent"
        if auth:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        # a client certificate from --client-ca: its CN is the user
        cert = self.connection.getpeercert() or {}
        cn = [v for rdn in cert.get("subject", ()) for k, v in rdn
              if k == "commonName"]
        if cn and cn[0] == self.server.cert_user:
            return "agent"
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def authorize(self, user, verb, plural, sub):
        if user == "admin":
            return
        if verb not in AGENT_RBAC.get((plural, sub or ""), set()):
            what = plural + ("/" + sub if sub else "")
            raise ApiError(403, "Forbidden",
                           f'{what} is forbidden: User "system:serviceaccount:'
                           f'aether-system:aether-agent" cannot {verb} '
                           f'resource "{what}"')

    def route(self, path):
        m = PATH_RE.match(path)
        if not m:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        res = RESOURCES.get((m["gv"], m["plural"]))
        if not res:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        kind, api, namespaced = res
        if m["ns"] and not namespaced:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        if m["sub"] and (m["sub"] != "status" or not m["name"] or
                         kind != "Service"):
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        return kind, api, namespaced, m["plural"], m["ns"], m["name"], m["sub"]

    def handle_any(self, method):
        try:
            if self.server.store.delay:
                time.sleep(self.server.store.delay)
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            user = self.who()
            if url.path.startswith("/fake/"):
                return self.fake(user, method, url.path, query)
            self.dispatch(user, method, url.path, query)
        except ApiError as e:
            self.send_json(e.code, status_obj(e.code, e.reason, e.message))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    do_GET = lambda self: self.handle_any("GET")
    do_POST = lambda self: self.handle_any("POST")
    do_PUT = lambda self: self.handle_any("PUT")
    do_PATCH = lambda self: self.handle_any("PATCH")
    do_DELETE = lambda self: self.handle_any("DELETE")

    def fake(self, user, method, path, query):
        if user != "admin" or method != "POST":
            raise ApiError(403, "Forbidden", "the /fake/ controls are the "
                           "test's")
        st = self.server.store
        if path == "/fake/compact":
            st.compact()
        elif path == "/fake/drop":
            st.drop()
        elif path == "/fake/slow":
            st.delay = int(query.get("ms", ["0"])[0]) / 1000.0
        else:
            raise ApiError(404, "NotFound", path)
        self.send_json(200, {"ok": True, "resourceVersion": str(st.rv)})

    # --- the API --------------------------------------------------------
    def dispatch(self, user, method, path, query):
        kind, api, namespaced, plural, ns, name, sub = self.route(path)
        watch = query.get("watch", ["false"])[0] in ("true", "1")
        if method == "GET" and name:
            verb = "get"
        elif method == "GET":
            verb = "watch" if watch else "list"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                    "DELETE": "delete"}[method]
        if (verb in ("list", "watch", "create")) == bool(name):
            raise ApiError(405, "MethodNotAllowed",
                           f"the server does not allow this method on the "
                           f"requested resource")
        if namespaced and not ns and verb not in ("list", "watch"):
            raise ApiError(404, "NotFound", "a namespace is required")
        self.authorize(user, verb, plural, sub)
        st = self.server.store
        if verb == "list":
            return self.list(kind, api, plural, ns, query)
        if verb == "watch":
            return self.watch(kind, api, plural, ns, query)
        if verb == "get":
            return self.send_json(200, st.get(plural, ns, name))
        if verb == "delete":
            st.delete(plural, ns, name)
            return self.send_json(200, status_obj(200, "", "deleted") |
                                  {"status": "Success"})
        body = self.body_json() if verb != "patch" else None
        if verb == "patch":
            return self.patch(plural, ns, name, sub)
        self.check_object(body, kind, api, namespaced, ns, name)
        if verb == "create":
            return self.send_json(201, st.create(plural, ns, body))
        want = body["metadata"].get("resourceVersion")

        def replace(old):
            if plural == "services":
                # an update of the main resource keeps the old status
                return self.service_update(
                    old, dict(body, status=copy.deepcopy(
                        old.get("status", {}))))
            return body
        return self.send_json(200, st.update(plural, ns, name, replace, want))

    def check_object(self, body, kind, api, namespaced, ns, name):
        if not isinstance(body, dict) or not isinstance(body.get("metadata"),
                                                        dict):
            raise ApiError(400, "BadRequest", "the body must be an object "
                           "with metadata")
        if body.get("kind") != kind or body.get("apiVersion") != api:
            raise ApiError(400, "BadRequest", f"the body must be a {kind} of "
                           f"{api}, not {body.get('kind')} of "
                           f"{body.get('apiVersion')}")
        m = body["metadata"]
        if not m.get("name") and m.get("generateName"):
            m["name"] = m["generateName"] + uuid.uuid4().hex[:5]
        if not m.get("name") or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                                             m["name"]):
            raise ApiError(422, "Invalid", f"{kind}.metadata.name: Invalid "
                           f"value: {m.get('name')!r}")
        if name and m["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object "
                           f"({m['name']}) does not match the name on the URL "
                           f"({name})")
        if namespaced and m.get("namespace", ns) != ns:
            raise ApiError(400, "BadRequest", "the namespace of the object "
                           "does not match the namespace on the request")
        if kind == "Event" and not isinstance(body.get("involvedObject"), dict):
            raise ApiError(422, "Invalid", "Event.involvedObject: Required "
                           "value")
        if kind == "Lease" and not isinstance(body.get("spec"), dict):
            raise ApiError(422, "Invalid", "Lease.spec: Required value")

    @staticmethod
    def service_update(old, new):
        """The Service rules of a spec update the real server applies:
        spec.loadBalancerClass may not change while the Service stays a
        LoadBalancer (422); leaving type LoadBalancer drops the class and
        wipes status.loadBalancer."""
        ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
        if not isinstance(nspec, dict):
            return new
        lb = "LoadBalancer"
        if (ospec.get("type") == lb and nspec.get("type") == lb and
                ospec.get("loadBalancerClass") !=
                nspec.get("loadBalancerClass")):
            raise ApiError(422, "Invalid", "Service \"%s\" is invalid: "
                           "spec.loadBalancerClass: Invalid value: %s: may "
                           "not change once set" % (
                               old["metadata"]["name"],
                               json.dumps(nspec.get("loadBalancerClass"))))
        if nspec.get("type") != lb:
            nspec.pop("loadBalancerClass", None)
            status = new.get("status")
            if isinstance(status, dict):
                status.pop("loadBalancer", None)
        return new

    def patch(self, plural, ns, name, sub):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown "
                           f"format - accepted media types include: "
                           f"{', '.join(PATCH_TYPES)}")
        if ctype != "application/merge-patch+json":
            raise ApiError(415, "UnsupportedMediaType",
                           f"{ctype} is not modelled by this stand-in")
        patch = self.body_json()
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be an "
                           "object")

        def apply(old):
            new = merge_patch(old, patch)
            # the status subresource changes only status, the main
            # resource everything but status
            if sub == "status":
                return dict(old, status=new.get("status", {}))
            new = dict(new, status=old.get("status", {}))
            if plural == "services":
                new = self.service_update(old, new)
            return new
        # a resourceVersion in the patch is a precondition, as in an update
        meta = patch.get("metadata")
        want = meta.get("resourceVersion") if isinstance(meta, dict) else None
        self.send_json(200, self.server.store.update(plural, ns, name, apply,
                                                     want))

    def int_param(self, query, key, default):
        v = query.get(key, [None])[0]
        if v in (None, ""):
            return default
        if not re.match(r"^[0-9]+$", v):
            raise ApiError(400, "BadRequest", f"{key}: invalid value {v!r}")
        return int(v)

    def list(self, kind, api, plural, ns, query):
        st = self.server.store
        limit = self.int_param(query, "limit", 0)
        cont = query.get("continue", [""])[0]
        items, rv = st.list(plural, ns)
        start = 0
        if cont:
            try:
                crv, start = (int(x) for x in cont.split(":"))
            except ValueError:
                raise ApiError(400, "BadRequest", "invalid continue token")
            if crv < st.compacted:
                raise ApiError(410, "Expired", "The provided continue "
                               "parameter is too old to display a consistent "
                               "list result.")
            rv = str(crv)
        meta = {"resourceVersion": rv}
        if limit and start + limit < len(items):
            meta["continue"] = f"{rv}:{start + limit}"
        page = items[start:start + limit] if limit else items[start:]
        self.send_json(200, {"kind": kind + "List", "apiVersion": api,
                             "metadata": meta, "items": page})

    def chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, kind, api, plural, ns, query):
        st = self.server.store
        timeout = self.int_param(query, "timeoutSeconds", 1800)
        bookmarks = query.get("allowWatchBookmarks", ["false"])[0] in (
            "true", "1")
        rv_text = query.get("resourceVersion", [""])[0]
        if rv_text not in ("", "0") and not re.match(r"^[0-9]+$", rv_text):
            raise ApiError(400, "BadRequest", "resourceVersion: invalid value")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + timeout
        with st.cond:
            cut = st.cut
            if rv_text in ("", "0"):
                # "any" / unset: the current state as ADDED events first
                last = st.rv
                start = [("ADDED", copy.deepcopy(o)) for (p, n, _), o in
                         sorted(st.objs.items()) if p == plural and
                         (ns is None or n == ns)]
            elif int(rv_text) < st.compacted:
                last, start = None, None
            else:
                last, start = int(rv_text), []
        if start is None:
            self.chunk({"type": "ERROR", "object": status_obj(
                410, "Expired", f"too old resource version: {rv_text} "
                f"({st.compacted})")})
            return self.end_stream()
        for etype, o in start:
            self.chunk({"type": etype, "object": o})
        next_bookmark = time.monotonic() + self.server.bookmark_s
        while True:
            with st.cond:
                now = time.monotonic()
                wait = min(deadline, next_bookmark) - now
                if wait > 0 and st.cut == cut and not any(
                        h[0] > last for h in st.history[-64:]):
                    st.cond.wait(wait)
                if st.cut != cut:
                    # cut without the final chunk: a dropped connection
                    self.close_connection = True
                    return
                events = [h for h in st.history if h[0] > last and
                          h[1] == plural and (ns is None or
                          h[3]["metadata"].get("namespace") == ns)]
                top = st.rv
            for hrv, _, etype, o in events:
                self.chunk({"type": etype, "object": o})
                last = hrv
            last = max(last, top) if not events else last
            now = time.monotonic()
            if bookmarks and now >= next_bookmark:
                self.chunk({"type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": api,
                    "metadata": {"resourceVersion": str(last)}}})
            if now >= next_bookmark:
                next_bookmark = now + self.server.bookmark_s
            if now >= deadline:
                return self.end_stream()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6444)
    ap.add_argument("--token", required=True)
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--bookmark-seconds", type=float, default=1.0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--client-ca", help="accept client certificates it signed")
    ap.add_argument("--client-cert-user", default="aether-agent",
                    help="the CN of a client certificate with the agent's "
                    "rights")
    args = ap.parse_args()
    fam = ThreadingHTTPServer
    if ":" in args.addr:
        import socket
        fam = type("V6Server", (ThreadingHTTPServer,),
                   {"address_family": socket.AF_INET6})
    srv = fam((args.addr, args.port), Handler)
    srv.daemon_threads = True
    srv.store = Store()
    srv.token, srv.admin_token = args.token, args.admin_token
    srv.bookmark_s = args.bookmark_seconds
    srv.verbose = args.verbose
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.cert_user = args.client_cert_user
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    # the handshake in the connection's own thread, not in accept()
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                 do_handshake_on_connect=False)
    print(f"listening on {args.addr}:{args.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
