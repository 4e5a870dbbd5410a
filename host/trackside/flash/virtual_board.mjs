// A virtual MicroPython board for deploy tests: the WebAssembly port's event-driven REPL served
// over a local TCP socket, so `mpremote connect socket://127.0.0.1:PORT ...` talks to it as to a
// board on a serial port. Its file system (MEMFS) persists across soft resets while the process
// lives; `--dump DIR` writes the board's files to DIR on exit (SIGTERM / socket close with --once).
//   node virtual_board.mjs --port 0 [--host 127.0.0.1] [--dump DIR] [--once]
// Prints "LISTENING <port>" on stdout when ready.
import fs from "fs";
import net from "net";
import path from "path";

const args = process.argv.slice(2);
let port = 0, host = "127.0.0.1", dump = null, once = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--port") port = parseInt(args[++i], 10);
  else if (args[i] === "--host") host = args[++i];
  else if (args[i] === "--dump") dump = args[++i];
  else if (args[i] === "--once") once = true;
}
const modName = process.env.TRACKSIDE_MPY_MODULE || "@micropython/micropython-webassembly-pyscript";
const { loadMicroPython } = await import(modName);

let client = null;
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  linebuffer: false,
  stdout: (b) => send(b),
  stderr: (b) => send(b),
});
// Emscripten's errno numbers differ from MicroPython's (ENOENT is 44 there); mpremote maps
// OSError numbers with MicroPython's table, so make the board raise the MicroPython numbers.
mp.runPython(`
import os, errno
_stat, _listdir, _remove, _mkdir, _rmdir, _ilistdir = os.stat, os.listdir, os.remove, os.mkdir, os.rmdir, os.ilistdir
_MAP = {44: 2, 20: 17, 54: 20, 31: 21, 28: 22, 55: 39}
def _wrap(f):
    def g(*a):
        try:
            return f(*a)
        except OSError as e:
            n = e.errno if hasattr(e, 'errno') else e.args[0]
            raise OSError(_MAP.get(n, n))
    return g
os.stat, os.listdir, os.remove, os.mkdir, os.rmdir, os.ilistdir = (
    _wrap(_stat), _wrap(_listdir), _wrap(_remove), _wrap(_mkdir), _wrap(_rmdir), _wrap(_ilistdir))
import builtins
_open = builtins.open
builtins.open = _wrap(_open)
del builtins
`);
mp.replInit();

// Raw-paste mode (what mpremote uses on real boards): the event-driven REPL lacks it, so the
// server speaks it: answer "R\x01" + window size, grant windows with \x01, ack the end with \x04,
// then run the collected code through the plain raw REPL, hiding its "OK" (raw-paste sends none).
const WINDOW = 512;
let state = "normal";        // normal | esc | escA | paste
let paste = [];
let sinceGrant = 0;
let hideOk = 0;
function send(bytes) {
  if (!client) return;
  let b = Buffer.from(bytes);
  while (hideOk > 0 && b.length > 0) { b = b.subarray(1); hideOk--; }
  if (b.length) client.write(b);
}
async function feed(data) {
  for (const c of data) {
    if (state === "paste") {
      if (c === 0x04) {
        state = "normal";
        client && client.write(Buffer.from([0x04]));
        hideOk = 2;
        for (const p of paste) await step(p);
        paste = [];
        await step(0x04);
      } else {
        paste.push(c);
        if (++sinceGrant >= WINDOW) { sinceGrant = 0; client && client.write(Buffer.from([0x01])); }
      }
      continue;
    }
    if (state === "normal" && c === 0x05) { state = "esc"; continue; }
    if (state === "esc") {
      if (c === 0x41) { state = "escA"; continue; }
      state = "normal"; await step(0x05);
    } else if (state === "escA") {
      if (c === 0x01) {
        state = "paste"; paste = []; sinceGrant = 0;
        client && client.write(Buffer.from([0x52, 0x01, WINDOW & 0xff, WINDOW >> 8]));
        continue;
      }
      state = "normal"; await step(0x05); await step(0x41);
    }
    await step(c);
  }
}

// A forced exit of the raw REPL (ctrl-D on an empty line) is a soft reset on a board: say so and
// come back in raw mode, as a board's main loop does.
async function step(c) {
  const r = await mp.replProcessCharWithAsyncify(c);
  if (r) {
    send(Buffer.from("MPY: soft reboot\r\n"));
    mp.replInit();  // stays in raw mode and prints the raw REPL banner again
  }
}

function dumpFs(dir) {
  const walk = (src, dest) => {
    for (const name of mp.FS.readdir(src)) {
      if (name === "." || name === "..") continue;
      const p = (src === "/" ? "" : src) + "/" + name;
      if (["/dev", "/proc", "/tmp", "/home"].includes(p)) continue;
      const st = mp.FS.stat(p);
      const out = path.join(dest, name);
      if (mp.FS.isDir(st.mode)) { fs.mkdirSync(out, { recursive: true }); walk(p, out); }
      else fs.writeFileSync(out, mp.FS.readFile(p));
    }
  };
  fs.mkdirSync(dir, { recursive: true });
  walk("/", dir);
}
function shutdown() {
  if (dump) dumpFs(dump);
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

let queue = Promise.resolve();
const server = net.createServer((sock) => {
  if (client) { sock.destroy(); return; }
  client = sock;
  sock.on("data", (d) => { queue = queue.then(() => feed(d)); });
  sock.on("close", () => { client = null; if (once) queue.then(shutdown); });
  sock.on("error", () => {});
});
server.listen(port, host, () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
