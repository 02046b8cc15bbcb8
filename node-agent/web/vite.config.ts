// The page is embedded into the `spore` binary: build.rs runs `vite build --outDir <OUT_DIR>`.
// No inline script or style may come out of it (the explorer's CSP forbids both).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
