// streamer's page: watches every stream over WebRTC and draws its results over the video.
//
// Signalling, results and events travel on one WebSocket (/ws, see streamer/server/wire.py). Media never
// uses STUN/TURN servers (iceServers: []), and the offer is sent once ICE gathering is complete (no trickle).
//
// Matching results to frames: the server sends frames with RTP timestamps = pts_ms * 90 + an unknown
// start offset. requestVideoFrameCallback gives each displayed frame's rtpTimestamp (or mediaTime); the
// offset is calibrated from the first frame shown while results are buffered, then each frame is drawn
// with the buffered result whose pts_ms is nearest to it. Without frame metadata the newest result is drawn.
//
// Over the picture: each stream's zones and counting lines (geometry from /api/streams, counts from the
// newest result), then every object's box with its track id and settled label. Labels stay inside the
// canvas and never overlap: see placeLabel. The event list (side panel) is filled from /api/events on
// each (re)connection and kept current by the "event" messages; a click plays the event's clip.

const BUFFER = 30; // results kept per stream
const LIST = 5; // results shown in a card's list
const LIST_OBJECTS = 6; // objects named in one line of that list
const EVENTS = 50; // events kept in the event list
const MATCH_MS = 500; // a result further than this from the frame is not a match
const RECALIBRATE_MS = 3000; // a frame this far from every buffered result restarts the calibration
const LABEL_HEIGHT = 18; // px, one label's box
const FONT = "600 13px system-ui, sans-serif";

const params = new URLSearchParams(location.search);
const token = params.get("token");

// ``path`` with ``query`` and the page's token (if any) as its query string.
function api(path, query = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) search.set(key, String(value));
  }
  if (token) search.set("token", token);
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
const withToken = (path) => api(path);
const eventPath = (id, file) => `/api/events/${encodeURIComponent(id)}/${file}`;

// For tests and for the curious: results, overlay draws and offsets, the labels and zones last drawn,
// per stream; whether the WebSocket is up.
const streamer = { results: {}, drawn: {}, offsets: {}, labels: {}, zones: {}, online: false };
window.streamer = streamer;

const views = new Map(); // stream id -> view (a card: video, canvas, results)
const events = new Map(); // event id -> {event, node, version}
let ws = null;
let pendingOffers = []; // resolvers of the offers sent, answered in order
let knownStreams = new Set();
let cameraStream = null; // our camera's stream id once the server answered
let cameraPending = false; // while our camera's offer awaits its answer, its stream is not yet known
let cameraMedia = null; // our camera's MediaStream while it is on

const $ = (selector) => document.querySelector(selector);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};
const percent = (confidence) => `${Math.round(confidence * 100)}%`;
const showClasses = () => $("#show-classes").checked;
const tracked = (object) => object.track_id !== null && object.track_id !== undefined;
const categoryText = (c) => `${c.display_name || c.name} ${percent(c.confidence)}`;

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
    goOffline();
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
      streamer.online = true;
      // A fresh start: every card (our camera's too: the server forgot it with the old connection).
      for (const view of [...views.values()]) removeView(view.stream);
      stopCamera();
      updateStreams(data.streams);
      loadEvents();
      break;
    case "result":
      addResult(data.result);
      break;
    case "event":
      if (data.event) putEvent(data.event);
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

// The server is gone: no card may look live over its last, frozen frame.
function goOffline() {
  streamer.online = false;
  for (const view of views.values()) {
    view.offline = true;
    view.card.classList.add("offline");
    setBadge(view, "offline");
    view.results = [];
    view.arrivals = [];
    view.lastDrawn = null;
    view.offsetMs = null;
    view.clock = null;
    view.list.replaceChildren();
    view.stats.textContent = "";
    clearOverlay(view);
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
  cameraMedia = media;
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

// Our camera's card is gone (the connection closed): let go of the camera and offer it again.
function stopCamera() {
  for (const track of cameraMedia?.getTracks() || []) track.stop();
  cameraMedia = null;
  cameraStream = null;
  const button = $("#camera-button");
  button.disabled = false;
  button.textContent = "Use my camera";
}

// --- streams and cards -----------------------------------------------------------------------------

function updateStreams(rows) {
  if (!streamer.online) return; // a late answer from before the connection closed
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
    view.geometry = {
      zones: Array.isArray(row.zones) ? row.zones : [],
      lines: Array.isArray(row.lines) ? row.lines : [],
    };
    if (row.counts) view.rowCounts = row.counts;
    renderCounts(view);
  }
}

function setBadge(view, state) {
  if (!view) return;
  view.badge.textContent = state || "unknown";
  view.badge.dataset.state = state || "unknown";
}

async function refreshStreams() {
  if (!streamer.online) return;
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
  const enlarge = el("button", "enlarge", "⤢");
  enlarge.type = "button";
  enlarge.title = "enlarge";
  enlarge.setAttribute("aria-label", `enlarge ${title}`);
  head.append(titleNode, badge, stats, enlarge);
  const screen = el("div", "screen");
  const video = el("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute("muted", "");
  video.setAttribute("playsinline", "");
  const canvas = el("canvas", "overlay");
  screen.append(video, canvas);
  const counts = el("p", "counts");
  const note = el("p", "note", "");
  const list = el("ol", "results");
  card.append(head, screen, counts, note, list);
  const grid = local ? $("#camera") : $("#streams");
  grid.append(card);
  if (local) grid.hidden = false;

  const view = {
    stream, local, card, title: titleNode, badge, stats, video, canvas, note, list, counts,
    pc: null,
    results: [], // newest last
    arrivals: [], // arrival times (ms) of recent results, for the fps
    clock: null, // {last, wraps} to unwrap 32-bit RTP timestamps
    offsetMs: null, // frame clock (ms) minus pts_ms, from the calibration
    lastDrawn: null,
    geometry: { zones: [], lines: [] }, // from /api/streams, in 0..1 of the picture
    rowCounts: null, // the counts /api/streams last gave, until a result brings newer ones
    countsText: "",
    tracks: false, // whether this stream's objects have had track ids (then one without is tentative)
    offline: false,
  };
  const toggle = () => {
    card.classList.toggle("enlarged");
    const big = card.classList.contains("enlarged");
    enlarge.title = big ? "shrink" : "enlarge";
    enlarge.setAttribute("aria-label", `${big ? "shrink" : "enlarge"} ${title}`);
    if (big) card.scrollIntoView({ block: "nearest" });
  };
  enlarge.addEventListener("click", toggle);
  screen.addEventListener("click", toggle);
  // The picture's own shape, once known: the card fills its width and keeps it.
  video.addEventListener("resize", () => {
    if (video.videoWidth && video.videoHeight) screen.style.aspectRatio = `${video.videoWidth} / ${video.videoHeight}`;
  });
  views.set(stream, view);
  updateGrids();
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
  if (view.local && !$("#camera").children.length) $("#camera").hidden = true;
  updateGrids();
}

// One card fills the width; several share it in a grid (see style.css).
function updateGrids() {
  for (const grid of [$("#camera"), $("#streams")]) grid.dataset.count = String(grid.children.length);
}

// --- results ---------------------------------------------------------------------------------------

function addResult(result) {
  const stream = result.stream;
  (streamer.results[stream] ||= []).push(result);
  if (streamer.results[stream].length > BUFFER) streamer.results[stream].shift();
  const view = views.get(stream);
  if (!view || view.offline) return;
  // Our own camera is private to this connection, so /api/streams does not list it: its results say it is live.
  if (view.local && view.badge.dataset.state !== "live") setBadge(view, "live");
  view.results.push(result);
  if (!view.tracks && result.objects.some(tracked)) view.tracks = true;
  if (view.results.length > BUFFER) view.results.shift();
  const now = performance.now();
  view.arrivals.push(now);
  while (view.arrivals.length && now - view.arrivals[0] > 2000) view.arrivals.shift();
  renderList(view);
  renderStats(view);
  if (result.counts) renderCounts(view);
}

// What a box says: "#12 cup · espresso 91%" (track, detector class, then the settled label, else this
// frame's best class), or "cup 90%" with neither.
function objectText(object) {
  const name = tracked(object) ? `#${object.track_id} ${object.name}` : object.name;
  const second = object.label || object.classes?.[0];
  return second ? `${name} · ${categoryText(second)}` : `${name} ${percent(object.confidence)}`;
}

// Each tracked object once; the untracked grouped by what they would say ("motorbike ×2 51%").
function describeObjects(objects) {
  const parts = [];
  const seen = new Set();
  const groups = new Map();
  for (const object of objects) {
    if (tracked(object)) {
      if (seen.has(object.track_id)) continue;
      seen.add(object.track_id);
      parts.push({ text: objectText(object) });
      continue;
    }
    const second = object.label || object.classes?.[0];
    const key = `${object.name}\u0000${second ? second.display_name || second.name : ""}`;
    const group = groups.get(key);
    if (group) {
      group.count += 1;
      group.confidence = Math.max(group.confidence, second ? second.confidence : object.confidence);
    } else {
      const entry = { name: object.name, second, count: 1, confidence: second ? second.confidence : object.confidence };
      groups.set(key, entry);
      parts.push(entry);
    }
  }
  const texts = parts.map((part) => {
    if (part.text) return part.text;
    const many = part.count > 1 ? ` ×${part.count}` : "";
    if (part.second) return `${part.name}${many} · ${part.second.display_name || part.second.name} ${percent(part.confidence)}`;
    return `${part.name}${many} ${percent(part.confidence)}`;
  });
  const more = texts.length > LIST_OBJECTS ? [`+${texts.length - LIST_OBJECTS} more`] : [];
  return [...texts.slice(0, LIST_OBJECTS), ...more].join(", ");
}

function describe(result) {
  if (showClasses() && result.classes.length) return result.classes.slice(0, 3).map(categoryText).join(", ");
  if (result.objects.length) return describeObjects(result.objects);
  if (result.classes.length) return result.classes.slice(0, 3).map(categoryText).join(", ");
  return "nothing";
}

// The newest results, newest first; a run of results that say the same is one line ("#45–49").
function renderList(view) {
  const lines = [];
  for (let i = view.results.length - 1; i >= 0 && lines.length <= LIST; i--) {
    const result = view.results[i];
    const what = describe(result);
    const last = lines.at(-1);
    if (last && last.what === what) last.first = result.frame;
    else lines.push({ what, first: result.frame, last: result.frame });
  }
  const items = lines.slice(0, LIST).map(({ what, first, last }) => {
    const item = el("li");
    const frames = first === last ? `#${last}` : `#${first}–${last}`;
    item.append(el("span", "frame", frames), el("span", "what", what));
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

// The stream's zone and line counts, newest first: the last result's, else what /api/streams said.
function currentCounts(view) {
  for (let i = view.results.length - 1; i >= 0; i--) if (view.results[i].counts) return view.results[i].counts;
  return view.rowCounts || {};
}

const total = (byClass) => Object.values(byClass || {}).reduce((sum, n) => sum + (Number(n) || 0), 0);
const breakdown = (byClass) =>
  Object.entries(byClass || {})
    .filter(([, n]) => n)
    .map(([name, n]) => `${name} ${n}`)
    .join(", ");

function zoneText(zone, counts) {
  const byClass = counts.zones?.[zone.name];
  return `${zone.name}: ${total(byClass)}`;
}

function lineText(line, counts) {
  const c = counts.lines?.[line.name] || {};
  return `${line.name}: in ${total(c.in)} · out ${total(c.out)}`;
}

// The counts as text under the video (rebuilt only when they change).
function renderCounts(view) {
  const counts = currentCounts(view);
  const parts = [
    ...view.geometry.zones.map((zone) => {
      const detail = breakdown(counts.zones?.[zone.name]);
      return { kind: "zone", name: zone.name, text: zoneText(zone, counts) + (detail ? ` (${detail})` : "") };
    }),
    ...view.geometry.lines.map((line) => ({ kind: "line", name: line.name, text: lineText(line, counts) })),
  ];
  const text = JSON.stringify(parts);
  if (text === view.countsText) return;
  view.countsText = text;
  view.counts.replaceChildren(
    ...parts.map((part) => {
      const node = el("span", `count ${part.kind}`, part.text);
      node.dataset[part.kind] = part.name;
      return node;
    }),
  );
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

function clearOverlay(view) {
  const ctx = view.canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, view.canvas.width, view.canvas.height);
  streamer.labels[view.stream] = [];
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
  if (view.offline || !video.videoWidth) return;
  const rect = pictureRect(video);
  const area = { width: video.clientWidth, height: video.clientHeight };
  const placed = []; // label boxes drawn so far, {x, y, w, h}
  const zones = drawGeometry(ctx, view, rect, area, placed);
  streamer.zones[view.stream] = zones;
  const picked = pick(view, clockMs);
  if (!picked) return;
  const { result, offset } = picked;
  view.lastDrawn = view.results.at(-1);
  if (offset !== null && offset !== undefined) {
    streamer.offsets[view.stream] = offset;
  }
  let items = drawObjects(ctx, view, result, rect, area, placed);
  // The whole-frame classes: when asked for, or when they are all there is (a classifier without a detector).
  if (showClasses() || !result.objects.length) items += drawClasses(ctx, result, rect, area, placed);
  if (items > 0) streamer.drawn[view.stream] = (streamer.drawn[view.stream] || 0) + 1;
  renderStats(view);
}

const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

// Where a w x h label for a box whose top-left corner is (x, y) goes in an area (the canvas), avoiding the
// labels already placed: above the box where that fits, else just inside its top edge; always inside the
// area; moved down past the placed labels it would cover, or if that runs off the bottom, up past them;
// where neither finds room, its first place. Same rules as streamer/vision/draw.py's place_label.
function placeLabel(x, y, w, h, area, placed) {
  const left = Math.max(0, Math.min(x, area.width - w));
  let top = y - h >= 0 ? y - h : y;
  top = Math.max(0, Math.min(top, area.height - h));
  const first = { x: left, y: top, w, h };
  for (const step of [1, -1]) {
    let spot = first;
    let other;
    let fits = true;
    while ((other = placed.find((p) => overlaps(spot, p)))) {
      const next = step > 0 ? other.y + other.h : other.y - h;
      if (next < 0 || next + h > area.height) {
        fits = false;
        break;
      }
      spot = { x: left, y: next, w, h };
    }
    if (fits) return spot;
  }
  return first;
}

// A label with its box placed by placeLabel; returns the box.
function label(ctx, text, x, y, color, area, placed) {
  ctx.font = FONT;
  const w = Math.ceil(ctx.measureText(text).width) + 8;
  const spot = placeLabel(x, y, w, LABEL_HEIGHT, area, placed);
  placed.push(spot);
  ctx.fillStyle = color;
  ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
  ctx.fillStyle = "#0b0f14";
  ctx.fillText(text, spot.x + 4, spot.y + 13);
  return spot;
}

const COLORS = ["#38bdf8", "#f472b6", "#a3e635", "#fbbf24", "#c084fc", "#fb7185", "#2dd4bf"];
const ZONE_COLORS = ["#facc15", "#34d399", "#60a5fa", "#f472b6", "#fb923c", "#a78bfa"];

// Zones (translucent polygons) and counting lines (with the side "in" points to), with their counts.
function drawGeometry(ctx, view, rect, area, placed) {
  const { zones, lines } = view.geometry;
  if (!zones.length && !lines.length) return 0;
  const counts = currentCounts(view);
  const at = ([px, py]) => [rect.x + px * rect.width, rect.y + py * rect.height];
  ctx.save();
  zones.forEach((zone, i) => {
    const points = (zone.polygon || []).map(at);
    if (points.length < 3) return;
    const color = ZONE_COLORS[i % ZONE_COLORS.length];
    ctx.beginPath();
    points.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.globalAlpha = 0.2;
    ctx.fillStyle = color;
    ctx.fill();
    ctx.globalAlpha = 0.9;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.globalAlpha = 1;
    const top = points.reduce((best, p) => (p[1] < best[1] || (p[1] === best[1] && p[0] < best[0]) ? p : best));
    label(ctx, zoneText(zone, counts), top[0], top[1] + LABEL_HEIGHT, color, area, placed);
  });
  lines.forEach((line, i) => {
    if (!line.start || !line.end) return;
    const color = ZONE_COLORS[(zones.length + i) % ZONE_COLORS.length];
    const [x1, y1] = at(line.start);
    const [x2, y2] = at(line.end);
    ctx.strokeStyle = color;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.stroke();
    // "in" is crossing from the line's left to its right, facing from start to end (y down): an arrow.
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    const nx = -(y2 - y1) / length;
    const ny = (x2 - x1) / length;
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(mx - nx * 10, my - ny * 10);
    ctx.lineTo(mx + nx * 10, my + ny * 10);
    ctx.lineTo(mx + nx * 5 + ny * 4, my + ny * 5 - nx * 4);
    ctx.moveTo(mx + nx * 10, my + ny * 10);
    ctx.lineTo(mx + nx * 5 - ny * 4, my + ny * 5 + nx * 4);
    ctx.stroke();
    const [lx, ly] = y1 <= y2 ? [x1, y1] : [x2, y2];
    label(ctx, lineText(line, counts), lx, ly, color, area, placed);
  });
  ctx.restore();
  return zones.length + lines.length;
}

function drawObjects(ctx, view, result, rect, area, placed) {
  const sx = rect.width / result.width;
  const sy = rect.height / result.height;
  const boxes = result.objects.map((object) => {
    const [x1, y1, x2, y2] = object.box;
    return { object, x: rect.x + x1 * sx, y: rect.y + y1 * sy, w: (x2 - x1) * sx, h: (y2 - y1) * sy };
  });
  ctx.save();
  ctx.lineWidth = 3;
  for (const { object, x, y, w, h } of boxes) {
    // Tentative objects (no track id yet, in a stream that has tracks) are drawn fainter, dashed.
    const tentative = view.tracks && !tracked(object);
    ctx.globalAlpha = tentative ? 0.55 : 1;
    ctx.setLineDash(tentative ? [6, 4] : []);
    ctx.strokeStyle = COLORS[object.class_id % COLORS.length];
    ctx.strokeRect(x, y, w, h);
  }
  ctx.setLineDash([]);
  // Labels after every box, the top boxes' first, so that no box is drawn over a label.
  const texts = [];
  for (const { object, x, y } of [...boxes].sort((a, b) => a.y - b.y || a.x - b.x)) {
    const tentative = view.tracks && !tracked(object);
    ctx.globalAlpha = tentative ? 0.7 : 1;
    const text = objectText(object);
    texts.push(text);
    label(ctx, text, x, y, COLORS[object.class_id % COLORS.length], area, placed);
  }
  ctx.restore();
  streamer.labels[view.stream] = texts;
  return result.objects.length;
}

function drawClasses(ctx, result, rect, area, placed) {
  const top = result.classes.slice(0, 3);
  top.forEach((c, i) => label(ctx, categoryText(c), rect.x + 6, rect.y + 6 + LABEL_HEIGHT, COLORS[i], area, placed));
  return top.length;
}

// --- events ----------------------------------------------------------------------------------------

const clock = (seconds) =>
  new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// The recorded events, newest first, as the list starts (on each connection: events may have come meanwhile).
async function loadEvents() {
  const empty = $("#events-empty");
  try {
    const response = await fetch(api("/api/events", { limit: EVENTS }), { cache: "no-store" });
    if (response.status === 404) {
      empty.textContent = "This server records no events.";
      return;
    }
    if (!response.ok) return;
    const rows = await response.json();
    if (Array.isArray(rows)) for (const row of rows) putEvent(row, { stored: true });
  } catch {
    // the WebSocket reports the connection
  }
}

// Add an event to the list, or bring its entry up to date; the list keeps the EVENTS newest.
function putEvent(event, { stored = false } = {}) {
  if (!event || typeof event.id !== "string") return;
  let entry = events.get(event.id);
  if (entry) {
    // A stored copy may be older than what the WebSocket already said: never go back from an end.
    if (stored && entry.event.end_time !== null && entry.event.end_time !== undefined) return;
    entry.event = { ...entry.event, ...event };
    entry.version += 1;
  } else {
    entry = { event, node: makeEventNode(event.id), version: 0 };
    events.set(event.id, entry);
    const list = $("#event-list");
    const later = [...list.children].find((node) => events.get(node.dataset.id).event.start_time < event.start_time);
    list.insertBefore(entry.node, later || null);
    while (list.children.length > EVENTS) {
      const oldest = list.lastElementChild;
      events.delete(oldest.dataset.id);
      oldest.remove();
    }
  }
  renderEvent(entry);
  $("#events-empty").hidden = events.size > 0;
}

function makeEventNode(id) {
  const node = el("li", "event");
  node.dataset.id = id;
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  const thumb = el("img", "thumb");
  thumb.alt = "";
  thumb.loading = "lazy";
  thumb.addEventListener("error", () => thumb.classList.add("missing"));
  thumb.addEventListener("load", () => thumb.classList.remove("missing"));
  const text = el("div", "event-text");
  text.append(el("div", "event-label"), el("div", "event-where"), el("div", "event-time"));
  node.append(thumb, text);
  const open = () => openClip(id);
  node.addEventListener("click", open);
  node.addEventListener("keydown", (key) => {
    if (key.key === "Enter" || key.key === " ") {
      key.preventDefault();
      open();
    }
  });
  return node;
}

function eventLabel(event) {
  const sub = event.sub_label ? ` · ${categoryText(event.sub_label)}` : "";
  return `${event.label}${sub}`;
}

function renderEvent({ event, node, version }) {
  const ended = event.end_time !== null && event.end_time !== undefined;
  node.dataset.kind = event.kind || "";
  node.dataset.state = ended ? "ended" : "ongoing";
  const thumb = node.querySelector(".thumb");
  // A new version of the event may have a better snapshot: ask again (past the browser's cache).
  const src = api(eventPath(event.id, "snapshot.jpg"), { v: version || undefined });
  if (thumb.getAttribute("src") !== src) thumb.src = src;
  node.querySelector(".event-label").textContent = eventLabel(event);
  const zones = event.zones?.length ? ` · in ${event.zones.join(", ")}` : "";
  const track = event.track_id !== null && event.track_id !== undefined ? ` #${event.track_id}` : "";
  node.querySelector(".event-where").textContent = `${event.stream}${track}${zones}`;
  const start = typeof event.start_time === "number" ? clock(event.start_time) : "";
  const length = ended ? duration(event.end_time - event.start_time) : "ongoing";
  node.querySelector(".event-time").textContent = start ? `${start} · ${length}` : length;
  node.title = `${eventLabel(event)}: play the clip`;
}

async function openClip(id) {
  const entry = events.get(id);
  if (!entry) return;
  const dialog = $("#player");
  const video = $("#player-video");
  const note = $("#player-note");
  $("#player-title").textContent = `${eventLabel(entry.event)} · ${entry.event.stream}`;
  closeVideo(video);
  video.hidden = true;
  note.textContent = "Loading the clip…";
  if (!dialog.open) dialog.showModal();
  const url = api(eventPath(id, "clip.mp4"));
  let response;
  try {
    // One byte is enough to know whether it is there (the server answers ranges).
    response = await fetch(url, { headers: { Range: "bytes=0-0" }, cache: "no-store" });
  } catch (error) {
    note.textContent = `The clip could not be loaded: ${error.message}`;
    return;
  }
  response.body?.cancel().catch(() => {});
  if (response.status === 404) {
    const ended = entry.event.end_time !== null && entry.event.end_time !== undefined;
    note.textContent = ended
      ? "This event's clip is not there (yet): it is written shortly after the event ends."
      : "No clip yet: this event is still going on; its clip is written when it ends.";
    return;
  }
  if (!response.ok) {
    note.textContent = `The clip could not be loaded (HTTP ${response.status}).`;
    return;
  }
  if (!dialog.open) return; // closed while we asked
  note.textContent = "";
  video.hidden = false;
  video.src = url;
  video.play().catch(() => {});
}

function closeVideo(video) {
  video.pause();
  video.removeAttribute("src");
  video.load();
}

// --- start -----------------------------------------------------------------------------------------

$("#camera-button").addEventListener("click", useCamera);
$("#show-classes").addEventListener("change", () => views.forEach(renderList));
$("#player-close").addEventListener("click", () => $("#player").close());
$("#player").addEventListener("close", () => closeVideo($("#player-video")));
connect();
setInterval(refreshStreams, 2000);
