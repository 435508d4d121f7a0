# vipgate for a `docker --net=host` deployment or lab.
#
#   docker build -t vipgate .
#   docker run --rm --net=host --cap-add NET_RAW --cap-add NET_ADMIN \
#     -v /run/vipgate:/run/vipgate -v "$PWD/vipgate.yaml:/etc/vipgate/vipgate.yaml:ro" vipgate
#
# -v /run/vipgate:/run/vipgate shares the per-NIC instance lock with the host, so a second
# vipgate on the same NIC (in another container, or on the host) is refused.
#
# Stage 1 compiles the TypeScript and the native libpcap binding (cap); stage 2 is a slim
# runtime with only libpcap's shared library, nftables (the host-kernel ingress rule) and
# iproute2 (to read the NIC's addresses).

FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap-dev python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
COPY native-bindings ./native-bindings
COPY scenarios ./scenarios
COPY test ./test
COPY bench ./bench
# npm ci builds cap against libpcap-dev and runs `prepare` (tsc) into dist/.
RUN npm ci --no-audit --no-fund \
 && node -e "require('cap')" \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/vipgate
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/native-bindings ./dist/native-bindings
# The compiled addons (AF_PACKET I/O, the shared-memory region): dist/native-bindings/*.js load them from here.
COPY --from=build /src/native-bindings/build ./native-bindings/build
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/scenarios/configs ./configs
# vipgate needs CAP_NET_RAW (capture/send) and CAP_NET_ADMIN (nftables); it runs as root in
# the container, with only the capabilities docker run grants.
# State changed through the runtime API (registrations, drains, switches) survives restarts here.
VOLUME /var/lib/vipgate
ENTRYPOINT ["node", "/opt/vipgate/bin/vipgate.js"]
CMD ["run", "--config", "/etc/vipgate/vipgate.yaml", "--state-file", "/var/lib/vipgate/state.json", "--stats-interval", "60s"]
