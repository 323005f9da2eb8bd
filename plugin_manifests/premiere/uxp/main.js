// Generated from src/main.js by build_uxp.py: edit the source, then run `python build_uxp.py`.
// UXP entry point (Premiere Pro): mounts the panel with the Premiere adapter. The browser never loads this file.

const { GATEWAY_URL } = require("./config.js");
const { mountPanel } = require("./panel.js");
const { PremiereAdapter } = require("./premiere_adapter.js");

let mounted = null;

require("uxp").entrypoints.setup({
  panels: {
    filmscorePanel: {
      show(rootNode) {
        if (!mounted) mounted = mountPanel(rootNode || document.body, new PremiereAdapter(), { allowedGateway: GATEWAY_URL });
      },
    },
  },
});
