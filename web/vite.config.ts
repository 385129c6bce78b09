import { defineConfig } from "vite";

// The console is served by the gateway at /admin/ (server/http/admin-static.ts), from the
// committed build in web/dist (docs/web-admin.md, "Building"). Run as `vite build web`, so the
// root is this directory. No React plugin: esbuild compiles TSX, and a build needs nothing else.
export default defineConfig({
  base: "/admin/",
  publicDir: "public",
  esbuild: { jsx: "automatic", legalComments: "none" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // No inline scripts or data: URLs for modules: the CSP forbids them.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      // TanStack's "use client" markers are for React server components, which this app has none of.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  server: {
    // `npm run dev:web`: the console with hot reload, calling a gateway on the default port.
    proxy: { "/agentgateway.admin.v1.": "http://127.0.0.1:7070" },
  },
});
