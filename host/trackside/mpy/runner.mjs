// Run MicroPython code under the official WebAssembly port, for tests, benchmarks and
// virtual nodes. Usage:
//   node runner.mjs [--lib HOSTDIR:DEST]... [--file HOSTFILE:DEST]... [--heap BYTES]
//                   (--run MEMFS_OR_HOST_FILE | --code CODE) [--argv JSON]
// Directories are copied (recursively, .py/.mpy/.json files) into the in-memory file system.
// A JS module `hostio` is registered for links that must not block:
//   hostio.read_byte() -> 0..255, or -1 when stdin has nothing now (stdin must be O_NONBLOCK),
//                         or -2 at end of input
//   hostio.write(buf)  -> writes a bytes-like object to stdout (buffered), hostio.flush()
// sys.stdout bytes go out unchanged (binary safe). Exit code 0, or 1 on an uncaught exception
// (its traceback on stderr).
import fs from "fs";
import path from "path";

const args = process.argv.slice(2);
const libs = [], files = [];
let heap = 4 * 1024 * 1024, run = null, code = null, argv = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--lib") libs.push(args[++i]);
  else if (a === "--file") files.push(args[++i]);
  else if (a === "--heap") heap = parseInt(args[++i], 10);
  else if (a === "--run") run = args[++i];
  else if (a === "--code") code = args[++i];
  else if (a === "--argv") argv = JSON.parse(args[++i]);
  else { process.stderr.write(`runner.mjs: unknown argument ${a}\n`); process.exit(2); }
}

const modName = process.env.TRACKSIDE_MPY_MODULE || "@micropython/micropython-webassembly-pyscript";
const { loadMicroPython } = await import(modName);

// stdout: buffered, flushed on frame delimiters (0x00), newlines, size, and at exit.
const OUT_CAP = 4096;
const outBuf = Buffer.alloc(OUT_CAP);
let outLen = 0;
function flushOut() {
  let off = 0;
  while (off < outLen) {
    try { off += fs.writeSync(1, outBuf, off, outLen - off); }
    catch (e) { if (e.code === "EAGAIN") continue; if (e.code === "EPIPE") process.exit(0); throw e; }
  }
  outLen = 0;
}
function putByte(c) {
  outBuf[outLen++] = c;
  if (c === 0 || c === 10 || outLen >= OUT_CAP) flushOut();
}

const inByte = Buffer.alloc(1);
let inEof = false;
function readByte() {
  if (inEof) return -2;
  try {
    const n = fs.readSync(0, inByte, 0, 1, null);
    if (n === 0) { inEof = true; return -2; }
    return inByte[0];
  } catch (e) {
    if (e.code === "EAGAIN" || e.code === "EWOULDBLOCK") return -1;
    if (e.code === "EOF" || e.code === "EIO") { inEof = true; return -2; }
    throw e;
  }
}

const mp = await loadMicroPython({
  heapsize: heap,
  linebuffer: false,
  stdout: (bytes) => { for (const c of bytes) putByte(c); },
  stderr: (bytes) => { flushOut(); process.stderr.write(bytes); },
  stdin: () => { const b = readByte(); return b >= 0 ? b : null; },
});

function mkdirs(FS, p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}
function copyTree(FS, src, dest) {
  mkdirs(FS, dest);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, ent.name), d = dest + "/" + ent.name;
    if (ent.isDirectory()) { if (ent.name !== "__pycache__") copyTree(FS, s, d); }
    else if (/\.(py|mpy|json)$/.test(ent.name)) FS.writeFile(d, fs.readFileSync(s));
  }
}
function splitSpec(spec) {
  const k = spec.lastIndexOf(":");
  return [spec.slice(0, k), spec.slice(k + 1)];
}
mkdirs(mp.FS, "/lib");
for (const spec of libs) { const [s, d] = splitSpec(spec); copyTree(mp.FS, s, d); }
for (const spec of files) {
  const [s, d] = splitSpec(spec);
  mkdirs(mp.FS, path.posix.dirname(d));
  mp.FS.writeFile(d, fs.readFileSync(s));
}

mp.registerJsModule("hostio", {
  read_byte: () => readByte(),
  write: (buf) => { for (const c of Uint8Array.from(buf)) putByte(c); },
  flush: () => flushOut(),
  now_us: () => Math.round(performance.now() * 1000),
});

let source = code;
if (run !== null) {
  source = fs.existsSync(run) ? fs.readFileSync(run, "utf8") : mp.FS.readFile(run, { encoding: "utf8" });
}
if (source === null) { process.stderr.write("runner.mjs: give --run or --code\n"); process.exit(2); }
mp.runPython("import sys\nsys.argv[:] = " + JSON.stringify(["main", ...argv]));
let rc = 0;
try {
  mp.runPython(source);
} catch (error) {
  if (error.name !== "PythonError") throw error;
  if (error.type !== "SystemExit") { flushOut(); process.stderr.write(String(error.message)); rc = 1; }
}
flushOut();
process.exit(rc);
