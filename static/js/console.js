// Consoles (templates/consoles/partials/console.html): noVNC for VMs, xterm.js for containers and
// node shells, both over the portal's relay websocket. The relay closes with a 44xx/45xx code
// whose state is shown here; nothing secret ever reaches this page.
const root = document.getElementById("console");
const screen = document.getElementById("console-screen");
const statusEl = document.getElementById("console-status");
const statePanel = document.getElementById("console-state");
const kind = root.dataset.kind;
const staticBase = root.dataset.static;

const STATES = {
  4401: ["Your session ended: log in again, then reconnect.", false],
  4403: ["You may not open this console.", false],
  4404: ["This console does not exist (or is not yours).", false],
  4409: ["The guest is not running.", true],
  4429: ["Too many consoles are open: close one, then reconnect.", false],
  4502: ["Proxmox refused the console ticket.", false],
  4504: ["Connection to the console lost.", false],
};

let socket = null;
let rfb = null;
let term = null;
let fit = null;
let pinger = null;
let connected = false;

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${root.dataset.socket}`;
}

function setStatus(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
  root.querySelectorAll("[data-console='ctrlaltdel'], [data-console='paste'] button").forEach((b) => {
    b.disabled = state !== "connected";
  });
}

function showState(code, reason) {
  const [text, offerStart] = STATES[code] || ["Connection to the console lost.", false];
  setStatus(text, "error");
  statePanel.hidden = false;
  statePanel.dataset.code = String(code);
  statePanel.querySelector(".console-message").textContent = reason && !text.includes(reason) ? `${text} ${reason}` : text;
  const start = statePanel.querySelector(".console-start");
  if (start) start.hidden = !offerStart;
}

function closed(event) {
  connected = false;
  clearInterval(pinger);
  if (root.dataset.closing === "1") return;
  showState(event.code, event.reason);
}

let RFB = null;

async function loadRfb() {
  if (!RFB) {
    RFB = (await import(`${staticBase}vendor/novnc/core/rfb.js`)).default;
    // A refused or lost console is shown on the page (closed() below), not logged as an error.
    const { initLogging } = await import(`${staticBase}vendor/novnc/core/util/logging.js`);
    initLogging("none");
  }
  return RFB;
}

async function open() {
  statePanel.hidden = true;
  root.dataset.closing = "";
  setStatus("Connecting…", "connecting");
  // noVNC must be loaded before the socket opens: it reads every message from the first one.
  if (kind === "qemu") await loadRfb();
  socket = new WebSocket(socketUrl(), ["binary"]);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("close", closed);
  if (kind === "qemu") return openVnc();
  return openTerminal();
}

function openVnc() {
  screen.replaceChildren();
  rfb = new RFB(screen, socket, { shared: true });
  rfb.scaleViewport = root.querySelector("[data-console='scale']").checked;
  rfb.resizeSession = false;
  rfb.addEventListener("connect", () => {
    connected = true;
    setStatus("Connected", "connected");
  });
}

function openTerminal() {
  if (!term) {
    term = new window.Terminal({ cursorBlink: true, convertEol: false, fontSize: 14 });
    fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(screen);
    term.onData((data) => send(`0:${new TextEncoder().encode(data).length}:${data}`));
    term.onResize(({ cols, rows }) => send(`1:${cols}:${rows}:`));
    window.addEventListener("resize", () => fit.fit());
  }
  const decoder = new TextDecoder();
  socket.addEventListener("open", () => {
    connected = true;
    setStatus("Connected", "connected");
    fit.fit();
    send(`1:${term.cols}:${term.rows}:`);
    term.focus();
    pinger = setInterval(() => send("2"), 30000);
  });
  socket.addEventListener("message", (event) => {
    term.write(typeof event.data === "string" ? event.data : decoder.decode(event.data, { stream: true }));
  });
}

function send(text) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(text);
}

// Paste: typed into the VM as key presses (works at a login prompt, where no clipboard agent runs).
async function typeText(text) {
  const { default: keysyms } = await import(`${staticBase}vendor/novnc/core/input/keysymdef.js`);
  for (const ch of text) {
    const keysym = ch === "\n" ? 0xff0d : keysyms.lookup(ch.codePointAt(0));
    rfb.sendKey(keysym, null, true);
    rfb.sendKey(keysym, null, false);
  }
}

root.addEventListener("click", (event) => {
  const action = event.target.closest("[data-console]")?.dataset.console;
  if (action === "reconnect") {
    root.dataset.closing = "1";
    if (rfb) rfb.disconnect();
    if (socket) socket.close();
    open();
  } else if (action === "ctrlaltdel" && rfb && connected) {
    rfb.sendCtrlAltDel();
  } else if (action === "popout") {
    window.open(root.dataset.popoutUrl, `console-${root.dataset.socket}`, "width=1024,height=700");
  }
});

root.addEventListener("change", (event) => {
  if (event.target.dataset.console === "scale" && rfb) rfb.scaleViewport = event.target.checked;
});

root.querySelector("[data-console='paste']")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.text;
  if (rfb && connected && input.value) typeText(input.value);
  input.value = "";
});

open();
