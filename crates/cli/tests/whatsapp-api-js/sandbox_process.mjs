// Starts `wameter sandbox` on a free port for a client script and waits
// for its address. Returns { base, sandbox, fail }: `fail(why)` stops the
// sandbox and exits non-zero with the reason.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export async function startSandbox(binary, args, env = {}) {
  const sandbox = spawn(binary, ["sandbox", "--listen", "127.0.0.1:0", ...args], {
    env: { WAMETER_LOG: "warn", PATH: "/usr/bin:/bin", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const fail = (why) => {
    sandbox.kill();
    console.error(why);
    process.exit(1);
  };
  const base = await new Promise((resolve) => {
    const lines = createInterface({ input: sandbox.stderr });
    lines.on("line", (line) => {
      if (line.startsWith("wameter sandbox listening on ")) resolve(line.split(" ").pop());
    });
    sandbox.on("exit", () => resolve(null));
  });
  if (!base) fail("the sandbox did not start");
  return { base, sandbox, fail };
}
