# The outbox relay as a container: `docker run … outbox-relay` runs the relay,
# `docker run … outbox-relay migrate up` applies the schema. `--target demo`
# builds the demo producer that docker-compose.yml runs next to the relays.
#
# Every build step is scripts/build-image.sh, which CI also runs (in a scratch
# directory, followed by a smoke test of its output): the image gets what CI
# checked. The script copies only its own list of inputs out of the build
# context, which is bind-mounted read-only; npm's cache persists between builds
# (RUN --mount: BuildKit, the default builder since Docker 23).

# Build: install everything, compile TypeScript, then drop the dev dependencies.
FROM node:24-bookworm-slim AS build
RUN --mount=type=bind,target=/context \
    --mount=type=cache,target=/root/.npm,sharing=locked \
    bash /context/scripts/build-image.sh --from /context /app

# Demo producer (not for production): every dependency, the sources, and tsx.
FROM node:24-bookworm-slim AS demo
RUN --mount=type=bind,target=/context \
    --mount=type=cache,target=/root/.npm,sharing=locked \
    bash /context/scripts/build-image.sh --from /context --demo /app
ENV NODE_ENV=production
WORKDIR /app
USER node
ENTRYPOINT ["node", "node_modules/tsx/dist/cli.mjs", "scripts/producer.ts"]

# Runtime (the default target): only what `node dist/cli/main.js` needs, owned
# by root and run as the unprivileged `node` user (uid 1000).
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    OUTBOX_HTTP_PORT=8080
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations
COPY --from=build /app/sql ./sql
USER node
# /healthz, /readyz and /metrics (OUTBOX_HTTP_PORT; empty turns the endpoint off).
EXPOSE 8080
# The image has no curl or wget: Node's fetch asks /readyz, which answers 200
# only while the database and broker are connected (and the broker is not
# blocking publishers). One-shot commands (migrate, tenants) end long before
# the first check runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.OUTBOX_HTTP_PORT||8080)+'/readyz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["run"]
