# The outbox relay as a container: `docker run … outbox-relay` runs the relay,
# `docker run … outbox-relay migrate up` applies the schema.

# Build: install everything, compile TypeScript, then drop the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the runtime dependencies are plain JavaScript, and the dev
# tools' native add-ons (ssh2, cpu-features) are not needed to build.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# Runtime: only what `node dist/cli/main.js` needs, owned by root and run as `node`.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations
USER node
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["run"]
