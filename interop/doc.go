// Package interop holds black-box tests that drive the real broker with
// clients it did not write: headless Chromium (through chromedp), whose own
// WebSocket sets the Origin header, and Node's ws package (the original
// users-server's client library) running the client from docs/PROTOCOL.md.
// The status page on the admin listener is tested in the same browser.
//
// The package has no code of its own. Its tests need a Chromium or Chrome
// binary and node with interop/node/node_modules (scripts/test.sh installs
// all three); without them each test skips, naming what is missing, except
// under CI=true, where a missing tool fails the test.
package interop
