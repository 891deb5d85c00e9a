// The console is served by `twh serve` at /console from files embedded in the binary: one
// script and one stylesheet with fixed names, so the server lists them at compile time.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: false,
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: "assets/console.js",
        chunkFileNames: "assets/console-[name].js",
        assetFileNames: "assets/console[extname]",
        codeSplitting: false,
      },
    },
  },
  server: {
    // `npm run dev` against a `twh serve` on :8080: the API and the session endpoints.
    proxy: {
      "/graphql": { target: "http://127.0.0.1:8080", ws: true },
      "/v1": "http://127.0.0.1:8080",
      "/console/session": "http://127.0.0.1:8080",
    },
  },
});
