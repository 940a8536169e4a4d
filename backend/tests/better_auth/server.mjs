// A Better Auth server with the JWT plugin on 127.0.0.1, for test_better_auth.py.
// Environment: PORT, DATABASE (an SQLite file), ALG (the key algorithm), ROTATION_SECONDS (optional),
// EXPIRATION (the JWT's lifetime, such as "15m"). Prints "ready" once it listens.
import http from "node:http";
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const baseURL = `http://127.0.0.1:${process.env.PORT}`;
const rotation = process.env.ROTATION_SECONDS ? Number(process.env.ROTATION_SECONDS) : undefined;
const auth = betterAuth({
  baseURL,
  secret: "a-secret-for-tests-only-that-is-long-enough-0123456789",
  database: new Database(process.env.DATABASE),
  emailAndPassword: { enabled: true },
  plugins: [
    jwt({
      jwks: { keyPairConfig: { alg: process.env.ALG ?? "EdDSA" }, rotationInterval: rotation },
      jwt: { expirationTime: process.env.EXPIRATION ?? "15m", definePayload: ({ user }) => ({ sub: user.id }) },
    }),
  ],
});
const { runMigrations } = await getMigrations(auth.options);
await runMigrations();
http.createServer(toNodeHandler(auth)).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("ready"));
