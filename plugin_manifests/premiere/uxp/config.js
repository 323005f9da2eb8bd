// Generated from src/config.js by build_uxp.py: edit the source, then run `python build_uxp.py`.
// The one place the panel's fixed settings live. The manifest's requiredPermissions.network.domains must name
// GATEWAY_URL exactly (tests/test_plugins_premiere.py checks it): UXP refuses WebSocket connections to any other
// origin, so the bridge must run its gateway there: `filmscore serve --ws 127.0.0.1:47861`.
// The render options' defaults, ranges and choices are not settings of the panel: it takes them from the bridge's
// hello (capabilities.render_options; panel.js OPTION_FIELDS).

const GATEWAY_HOST = "127.0.0.1";
const GATEWAY_PORT = 47861;
const GATEWAY_URL = `ws://${GATEWAY_HOST}:${GATEWAY_PORT}`;

// Premiere's time unit: TickTime counts 254016000000 ticks per second (divisible by every common frame rate and
// audio rate), so a tick count sent as {value: ticks, rate: TICKS_PER_SECOND} is an exact rational time.
const TICKS_PER_SECOND = 254016000000;
module.exports = { GATEWAY_HOST, GATEWAY_PORT, GATEWAY_URL, TICKS_PER_SECOND };
