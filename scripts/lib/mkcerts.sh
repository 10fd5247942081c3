#!/usr/bin/env bash
# Makes a throw-away CA and a server certificate for the API endpoint name
# and the VIPs: mkcerts.sh DIR HOSTNAME IP...  -> DIR/ca.crt server.crt server.key
set -euo pipefail
dir=$1 host=$2
shift 2
san="DNS:${host}"
for ip in "$@"; do
	san="${san},IP:${ip}"
done
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ca.key -out ca.crt -days 2 -subj "/CN=aether demo CA" \
	2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout server.key -out server.csr -subj "/CN=${host}" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
	-out server.crt -days 2 -extfile server.ext 2>/dev/null
rm -f server.csr server.ext ca.srl
