// A gitfaas function with a third-party dependency (installed by the executor's build step
// from its npm registry; scripts/stack.sh: the local verdaccio proxy): durations in words.
const ms = require("ms");

exports.main = (data) => ({
  long: (data.millis || []).map((m) => ms(m, { long: true })),
});
