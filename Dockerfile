# syntax=docker/dockerfile:1
# One image for the five Backchannel services; the container's argument names the one
# to run:  docker run backchannel:dev token-authority   (see docs/deploy.md)
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: every dependency, then `nest build --all` into dist/ -------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm install`, not `npm ci`: the lockfile made on the project's machines lacks the
# macOS/Windows optional builds of @swc/core, which `npm ci` refuses (shared TOOLCHAIN.md);
# `npm install` with the committed lockfile leaves it unchanged. Dependencies' install
# scripts stay off, as they are on npm 11 by default (@swc/core ships prebuilt binaries).
RUN npm install --ignore-scripts --no-audit --no-fund
COPY tsconfig.json nest-cli.json ./
COPY libs ./libs
COPY apps ./apps
RUN npm run build

# ---- production dependencies only -------------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

# ---- runtime: production node_modules + dist + the entry point, run as `node` ------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Everything is owned by root and only readable by `node`: the process cannot change its
# own code, and the root filesystem can be mounted read-only (k8s readOnlyRootFilesystem).
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY scripts/services.mjs scripts/entrypoint.mjs ./scripts/
USER node
# callback-ingress 8080, token-authority 8081, ordering-sequencer 8082,
# conversation-injector 8083, tool-dispatcher 8084 (scripts/services.mjs)
EXPOSE 8080 8081 8082 8083 8084
# No CMD: the service must be named (argument or SERVICE); the entry point refuses otherwise.
ENTRYPOINT ["node", "scripts/entrypoint.mjs"]
