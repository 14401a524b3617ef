// streamer's page: watches every stream over WebRTC and draws its results over the video.
//
// Signalling and results travel on one WebSocket (/ws, see streamer/server/wire.py). Media never uses
// STUN/TURN servers (iceServers: []), and the offer is sent once ICE gathering is complete (no trickle).
//
// Matching results to frames: the server sends frames with RTP timestamps = pts_ms * 90 + an unknown
// start offset. requestVideoFrameCallback gives each displayed frame's rtpTimestamp (or mediaTime); the
// offset is calibrated from the first frame shown while results are buffered, then each frame is drawn
// with the buffered result whose pts_ms is nearest to it. Without frame metadata the newest result is drawn.

const BUFFER = 30; // results kept per stream
const LIST = 5; // results shown in a card's list
const MATCH_MS = 500; // a result further than this from the frame is not a match
const RECALIBRATE_MS = 3000; // a frame this far from every buffered result restarts the calibration

const params = new URLSearchParams(location.search);
const token = params.get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);

// For tests and for the curious: results, overlay draws and overlay offsets per stream.
const streamer = { results: {}, drawn: {}, offsets: {} };
window.streamer = streamer;

const views = new Map(); // stream id -> view (a card: video, canvas, results)
let ws = null;
let pendingOffers = []; // resolvers of the offers sent, answered in order
let knownStreams = new Set();
let cameraStream = null; // our camera's stream id once the server answered
let cameraPending = false; // while our camera's offer awaits its answer, its stream is not yet known

const $ = (selector) => document.querySelector(selector);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};
const percent = (confidence) => `${Math.round(confidence * 100)}%`;
const showClasses = () => $("#show-classes").checked;

function message(text) {
  const box = $("#message");
  box.hidden = !text;
  box.textContent = text || "";
}

// --- the WebSocket ---------------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}${withToken("/ws")}`);
  setConnection("connecting");
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = () => {
    setConnection("disconnected");
    for (const pending of pendingOffers) pending.reject(new Error("the connection closed"));
    pendingOffers = [];
    setTimeout(connect, 2000);
  };
}

function setConnection(text) {
  const badge = $("#connection");
  badge.textContent = text;
  badge.dataset.state = text;
}

function send(data) {
  ws.send(JSON.stringify(data));
}

function onMessage(data) {
  switch (data.type) {
    case "hello":
      setConnection("connected");
      for (const view of views.values()) if (!view.local) removeView(view.stream);
      updateStreams(data.streams);
      break;
    case "result":
      addResult(data.result);
      break;
    case "answer":
      pendingOffers.shift()?.resolve(data);
      break;
    case "error":
      if (pendingOffers.length) pendingOffers.shift().reject(new Error(`${data.code}: ${data.message}`));
      else message(`server: ${data.message}`);
      break;
  }
}

function offer(stream, sdp) {
  return new Promise((resolve, reject) => {
    pendingOffers.push({ resolve, reject });
    send({ type: "offer", stream, sdp });
  });
}

// --- WebRTC ----------------------------------------------------------------------------------------

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function negotiate(pc, stream) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const answer = await offer(stream, pc.localDescription.sdp);
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  return answer.stream;
}

async function watch(view) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  view.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => {
    view.video.srcObject = new MediaStream([event.track]);
  };
  try {
    await negotiate(pc, view.stream);
  } catch (error) {
    view.note.textContent = `no video: ${error.message}`;
  }
}

async function useCamera() {
  const button = $("#camera-button");
  button.disabled = true;
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    message(`camera: ${error.message}`);
    button.disabled = false;
    return;
  }
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver(media.getVideoTracks()[0], { direction: "sendonly", streams: [media] });
  const view = makeView("camera", { local: true, title: "my camera" });
  view.video.srcObject = media;
  view.pc = pc;
  cameraPending = true;
  try {
    const stream = await negotiate(pc, null);
    cameraStream = stream;
    views.delete("camera");
    view.stream = stream;
    view.card.dataset.stream = stream;
    view.title.textContent = `my camera (${stream})`;
    views.set(stream, view);
    // The server narrows our subscription to the camera's stream: ask again for every stream too.
    send({ type: "subscribe", streams: [...knownStreams, stream] });
    button.textContent = "Camera on";
  } catch (error) {
    message(`camera: ${error.message}`);
    button.disabled = false;
  } finally {
    cameraPending = false;
  }
}

// --- streams and cards -----------------------------------------------------------------------------

function updateStreams(rows) {
  for (const row of rows) {
    const stream = String(row.stream);
    if (stream === cameraStream) {
      setBadge(views.get(stream), row.state);
      continue;
    }
    if (cameraPending && stream.startsWith("browser-")) continue; // perhaps ours: wait for the answer
    knownStreams.add(stream);
    let view = views.get(stream);
    if (!view) {
      view = makeView(stream, { title: stream });
      watch(view);
    }
    setBadge(view, row.state);
  }
}

function setBadge(view, state) {
  if (!view) return;
  view.badge.textContent = state || "unknown";
  view.badge.dataset.state = state || "unknown";
}

async function refreshStreams() {
  try {
    const response = await fetch(withToken("/api/streams"), { cache: "no-store" });
    if (response.ok) updateStreams(await response.json());
  } catch {
    // the WebSocket reports the connection; try again on the next tick
  }
}

function makeView(stream, { local = false, title }) {
  const card = el("article", "card");
  card.dataset.stream = stream;
  const head = el("header", "card-head");
  const titleNode = el("h2", "title", title);
  const badge = el("span", "badge", local ? "local" : "…");
  const stats = el("span", "stats", "");
  head.append(titleNode, badge, stats);
  const screen = el("div", "screen");
  const video = el("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute("muted", "");
  video.setAttribute("playsinline", "");
  const canvas = el("canvas", "overlay");
  screen.append(video, canvas);
  const note = el("p", "note", "");
  const list = el("ol", "results");
  card.append(head, screen, note, list);
  (local ? $("#camera") : $("#streams")).append(card);
  if (local) $("#camera").hidden = false;

  const view = {
    stream, local, card, title: titleNode, badge, stats, video, canvas, note, list,
    pc: null,
    results: [], // newest last
    arrivals: [], // arrival times (ms) of recent results, for the fps
    clock: null, // {last, wraps} to unwrap 32-bit RTP timestamps
    offsetMs: null, // frame clock (ms) minus pts_ms, from the calibration
    lastDrawn: null,
  };
  views.set(stream, view);
  startDrawing(view);
  return view;
}

function removeView(stream) {
  const view = views.get(stream);
  if (!view) return;
  view.pc?.close();
  view.card.remove();
  view.stopped = true;
  views.delete(stream);
}

// --- results ---------------------------------------------------------------------------------------

function addResult(result) {
  const stream = result.stream;
  (streamer.results[stream] ||= []).push(result);
  if (streamer.results[stream].length > BUFFER) streamer.results[stream].shift();
  const view = views.get(stream);
  if (!view) return;
  // Our own camera is private to this connection, so /api/streams does not list it: its results say it is live.
  if (view.local && view.badge.dataset.state !== "live") setBadge(view, "live");
  view.results.push(result);
  if (view.results.length > BUFFER) view.results.shift();
  const now = performance.now();
  view.arrivals.push(now);
  while (view.arrivals.length && now - view.arrivals[0] > 2000) view.arrivals.shift();
  renderList(view);
  renderStats(view);
}

function describe(result) {
  if (!showClasses() && result.objects.length) {
    return result.objects
      .slice(0, 3)
      .map((o) => `${o.name} ${percent(o.confidence)}`)
      .join(", ");
  }
  if (result.classes.length) {
    return result.classes
      .slice(0, 3)
      .map((c) => `${c.display_name || c.name} ${percent(c.confidence)}`)
      .join(", ");
  }
  return result.objects.length ? `${result.objects.length} objects` : "nothing";
}

function renderList(view) {
  const items = view.results.slice(-LIST).reverse().map((result) => {
    const item = el("li");
    item.append(el("span", "frame", `#${result.frame}`), el("span", "what", describe(result)));
    return item;
  });
  view.list.replaceChildren(...items);
}

function renderStats(view) {
  const fps = view.arrivals.length > 1
    ? ((view.arrivals.length - 1) * 1000) / (view.arrivals.at(-1) - view.arrivals[0])
    : 0;
  const newest = view.results.at(-1);
  const age = newest?.timings_ms?.age;
  const parts = [`${fps.toFixed(1)} fps`];
  if (age !== undefined) parts.push(`age ${Math.round(age)} ms`);
  const offset = streamer.offsets[view.stream];
  if (offset !== undefined) parts.push(`overlay ${offset >= 0 ? "+" : ""}${Math.round(offset)} ms`);
  view.stats.textContent = parts.join(" · ");
}

// --- matching results to frames ---------------------------------------------------------------------

// The displayed frame's time in ms on the sender's clock, or null without metadata.
function frameClockMs(view, metadata) {
  if (metadata && typeof metadata.rtpTimestamp === "number") {
    const clock = (view.clock ||= { last: metadata.rtpTimestamp, wraps: 0 });
    if (metadata.rtpTimestamp < clock.last && clock.last - metadata.rtpTimestamp > 2 ** 31) clock.wraps += 1;
    clock.last = metadata.rtpTimestamp;
    return (metadata.rtpTimestamp + clock.wraps * 2 ** 32) / 90;
  }
  if (metadata && typeof metadata.mediaTime === "number") return metadata.mediaTime * 1000;
  return null;
}

// The result to draw over the frame whose clock is ``clockMs``, and its offset (frame time - result pts).
function pick(view, clockMs) {
  const newest = view.results.at(-1);
  if (!newest) return null;
  if (clockMs === null || view.local) {
    // The local camera's frames have no server timestamps: draw the newest result.
    return { result: newest, offset: null };
  }
  if (view.offsetMs === null) view.offsetMs = clockMs - newest.pts_ms;
  const frameMs = clockMs - view.offsetMs;
  let best = null;
  for (const result of view.results) {
    if (!best || Math.abs(result.pts_ms - frameMs) < Math.abs(best.pts_ms - frameMs)) best = result;
  }
  const distance = frameMs - best.pts_ms;
  if (Math.abs(distance) > RECALIBRATE_MS) {
    view.offsetMs = null; // the stream restarted or the first pair was a poor match
    return { result: newest, offset: null };
  }
  if (Math.abs(distance) > MATCH_MS) return { result: newest, offset: frameMs - newest.pts_ms };
  return { result: best, offset: distance };
}

// --- drawing ---------------------------------------------------------------------------------------

function startDrawing(view) {
  const video = view.video;
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (_now, metadata) => {
      if (view.stopped) return;
      draw(view, frameClockMs(view, metadata));
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  // Also redraw on animation frames: results may arrive after their frame, and a still video has no callbacks.
  const tick = () => {
    if (view.stopped) return;
    if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype) || view.results.at(-1) !== view.lastDrawn) {
      draw(view, view.lastClockMs ?? null);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

// Where the video's picture lies inside the element (object-fit: contain).
function pictureRect(video) {
  const width = video.clientWidth;
  const height = video.clientHeight;
  if (!video.videoWidth || !video.videoHeight) return { x: 0, y: 0, width, height };
  const scale = Math.min(width / video.videoWidth, height / video.videoHeight);
  const w = video.videoWidth * scale;
  const h = video.videoHeight * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, width: w, height: h };
}

function draw(view, clockMs) {
  view.lastClockMs = clockMs;
  const { canvas, video } = view;
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(video.clientWidth * ratio);
  const height = Math.round(video.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, video.clientWidth, video.clientHeight);
  const picked = pick(view, clockMs);
  if (!picked || !video.videoWidth) return;
  const { result, offset } = picked;
  view.lastDrawn = view.results.at(-1);
  if (offset !== null && offset !== undefined) {
    streamer.offsets[view.stream] = offset;
  }
  const rect = pictureRect(video);
  const items = !showClasses() && result.objects.length ? drawObjects(ctx, result, rect) : drawClasses(ctx, result, rect);
  if (items > 0) streamer.drawn[view.stream] = (streamer.drawn[view.stream] || 0) + 1;
  renderStats(view);
}

function label(ctx, text, x, y, color) {
  ctx.font = "600 13px system-ui, sans-serif";
  const w = ctx.measureText(text).width + 8;
  const top = Math.max(0, y - 18);
  ctx.fillStyle = color;
  ctx.fillRect(x, top, w, 18);
  ctx.fillStyle = "#0b0f14";
  ctx.fillText(text, x + 4, top + 13);
}

const COLORS = ["#38bdf8", "#f472b6", "#a3e635", "#fbbf24", "#c084fc", "#fb7185", "#2dd4bf"];

function drawObjects(ctx, result, rect) {
  const sx = rect.width / result.width;
  const sy = rect.height / result.height;
  for (const object of result.objects) {
    const [x1, y1, x2, y2] = object.box;
    const x = rect.x + x1 * sx;
    const y = rect.y + y1 * sy;
    const color = COLORS[object.class_id % COLORS.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 3;
    ctx.strokeRect(x, y, (x2 - x1) * sx, (y2 - y1) * sy);
    let text = `${object.name} ${percent(object.confidence)}`;
    const second = object.classes?.[0];
    if (second) text += ` · ${second.display_name || second.name} ${percent(second.confidence)}`;
    label(ctx, text, x, y, color);
  }
  return result.objects.length;
}

function drawClasses(ctx, result, rect) {
  const top = result.classes.slice(0, 3);
  top.forEach((c, i) => {
    label(ctx, `${c.display_name || c.name} ${percent(c.confidence)}`, rect.x + 6, rect.y + 24 + i * 22, COLORS[i]);
  });
  return top.length;
}

// --- start -----------------------------------------------------------------------------------------

$("#camera-button").addEventListener("click", useCamera);
$("#show-classes").addEventListener("change", () => views.forEach(renderList));
connect();
setInterval(refreshStreams, 2000);
