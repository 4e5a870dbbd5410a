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
const pending = [];
function send(bytes) {
  if (client) client.write(Buffer.from(bytes));
}
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

// Raw-paste mode is not supported by this REPL: answer its request with "R\x00" so mpremote
// falls back to the plain raw REPL.
let rawPasteState = 0;
async function feed(data) {
  for (const c of data) {
    if (rawPasteState === 0 && c === 0x05) { rawPasteState = 1; pending.push(c); continue; }
    if (rawPasteState === 1) {
      if (c === 0x41) { rawPasteState = 2; pending.push(c); continue; }
      rawPasteState = 0;
    } else if (rawPasteState === 2) {
      rawPasteState = 0;
      if (c === 0x01) { pending.length = 0; send([0x52, 0x00]); continue; }
    }
    while (pending.length) await step(pending.shift());
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
