#!/usr/bin/env bash
# Makes a development CA and a server certificate it signs, for localhost and 127.0.0.1, in certs/dev/
# (ignored by git: generated keys are never committed). Point an upstream's `ca:` at certs/dev/ca.pem
# to trust servers that use certs/dev/server.pem.
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)/dev"
mkdir -p "$out"
cd "$out"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=tenant-relay development CA" \
  -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 600 ca.key server.key
echo "made $out/ca.pem, $out/server.pem and $out/server.key"
