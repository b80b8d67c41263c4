import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The gateway serves the built console at "/" from gateway/console (git-ignored).
const outDir = fileURLToPath(new URL("../gateway/console", import.meta.url));

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    host: "127.0.0.1",
    // `npm run dev` talks to a gateway on ACCORD_URL (default: the `make run` port).
    proxy: {
      "/api": process.env.ACCORD_URL ?? "http://127.0.0.1:8420",
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test/setup.ts"],
  },
});
