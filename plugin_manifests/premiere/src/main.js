// UXP entry point (Premiere Pro): mounts the panel with the Premiere adapter. The browser never loads this file.

import { GATEWAY_URL } from "./config.js";
import { mountPanel } from "./panel.js";
import { PremiereAdapter } from "./premiere_adapter.js";

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
