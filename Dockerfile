# tenant-relay: multi-stage build, small Node runtime (the Active LTS line), non-root.
#   docker build -t tenant-relay .
#   docker run -p 2525:2525 -v $PWD/relay.yaml:/etc/tenant-relay/relay.yaml:ro \
#     -v tenant-relay-spool:/var/spool/tenant-relay tenant-relay
# The mounted config sets `delivery.spool.path: /var/spool/tenant-relay` and where to listen: 127.0.0.1 for a
# sidecar (deploy/kubernetes/relay.yaml: only the app in the same pod reaches it), 0.0.0.0 for a fleet
# replica behind a Service (deploy/kubernetes/fleet.yaml); certificates mount under /etc/tenant-relay/tls.
# Commands: `docker exec <container> tenant-relay queue list` (the same launcher as from a checkout).
FROM node:26-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# npm ci applies these to node_modules (patch-package; the relay refuses to start without them).
COPY patches ./patches
# npm ci builds dist/ through bin/build.js (its prepare script).
COPY bin ./bin
COPY relay ./relay
COPY config ./config
# The image has its Node (the Active LTS line): the project's own copy (an optional dependency) is left out.
RUN npm ci --no-audit --no-fund --omit=optional && npm prune --omit=dev --omit=optional

FROM node:26-bookworm-slim
ENV NODE_ENV=production TENANT_RELAY_CONFIG=/etc/tenant-relay/relay.yaml
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config
COPY --from=build /app/bin ./bin
RUN ln -s /app/bin/tenant-relay /usr/local/bin/tenant-relay \
  && mkdir -p /var/spool/tenant-relay /etc/tenant-relay && chown -R node:node /var/spool/tenant-relay
USER node
VOLUME ["/var/spool/tenant-relay"]
EXPOSE 2525 9025
# /readyz: config loaded, listeners up, spool writable.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9025/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Exec form, and the launcher execs Node: SIGTERM reaches the relay, which drains before it exits. The
# launcher also sets the relay's Node flags (bin/tenant-relay says which, and why).
CMD ["tenant-relay", "serve"]
