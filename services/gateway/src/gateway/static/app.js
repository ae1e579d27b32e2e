// FlashSight try-it page. Plain JS, no build step: it calls the public
// POST /v1/chat/completions (streamed, SSE) exactly like any other client would.
"use strict";

const TEXT = {
  en: {
    tagline: "Ask questions about an image",
    api_docs: "API docs",
    image_title: "Image",
    drop_hint: "Drop an image here, paste it (Ctrl+V), or click to pick one",
    clear_image: "Remove image",
    chat_title: "Conversation",
    new_chat: "New conversation",
    empty_hint: "Pick an image, type a question and press Ask. Questions with 为什么 / why / should … go to the reasoner (cascade); others are answered by the vision model (direct).",
    question_label: "Question",
    question_placeholder: "e.g. What is the order number?",
    route_label: "Route",
    route_auto: "auto (keywords)",
    route_direct: "direct (vision)",
    route_cascade: "cascade (vision → reasoner)",
    ask: "Ask",
    stop: "Stop",
    copy_curl: "Copy as curl",
    copy_python: "Copy as Python (openai)",
    copied: "Copied to the clipboard",
    copy_failed: "Could not copy; the code was written to the browser console",
    api_key_title: "API key",
    api_key_hint: "Only needed when the server requires one. Sent as Authorization: Bearer.",
    api_key_placeholder: "paste your key",
    remember_key: "Remember on this device (localStorage)",
    you: "You",
    assistant: "FlashSight",
    limits: (mb, types) => `Accepted: ${types}, up to ${mb} MB`,
    image_info: (name, kb, w, h) => `${name} · ${kb} KB · ${w}×${h}`,
    err_type: (type, types) => `This file is ${type || "of an unknown type"}; accepted image types: ${types}.`,
    err_size: (mb, max) => `This image is ${mb} MB; at most ${max} MB are accepted.`,
    err_question: "Type a question first.",
    err_network: (msg) => `Could not reach the gateway: ${msg}`,
    err_http: (status) => `The gateway answered HTTP ${status} without an explanation.`,
    err_stream_cut: "The answer stream ended unexpectedly.",
    err_auth: "This server requires an API key: enter it below.",
    stopped: "(stopped)",
    b_route: "route",
    b_keyword: "keyword",
    b_cache: "caption cache",
    b_answer_cache: "answer cache",
    b_degraded: "degraded",
    b_not_degraded: "not degraded",
    b_models: "models",
    b_timings: "timings",
    b_request: "request id",
    cache_values: { hit: "hit", miss: "miss", partial: "partial", unavailable: "unavailable", none: "n/a" },
    answer_cache_values: { hit: "hit", miss: "miss", bypass: "bypass (not looked up)", unavailable: "unavailable", none: "n/a" },
    stages: { admission: "admission", caption: "caption", vision: "vision", reasoner: "reasoner", total: "total" },
  },
  zh: {
    tagline: "对图片提问",
    api_docs: "API 文档",
    image_title: "图片",
    drop_hint: "把图片拖到这里、粘贴（Ctrl+V），或点击选择",
    clear_image: "移除图片",
    chat_title: "对话",
    new_chat: "新对话",
    empty_hint: "选择图片，输入问题，点击“提问”。含“为什么 / 应该 / 建议”等词的问题交给推理模型（cascade），其余由视觉模型直接回答（direct）。",
    question_label: "问题",
    question_placeholder: "例如：订单号是多少?",
    route_label: "路由",
    route_auto: "自动（关键词）",
    route_direct: "direct（视觉模型）",
    route_cascade: "cascade（视觉 → 推理）",
    ask: "提问",
    stop: "停止",
    copy_curl: "复制 curl 命令",
    copy_python: "复制 Python（openai）代码",
    copied: "已复制到剪贴板",
    copy_failed: "无法复制；代码已输出到浏览器控制台",
    api_key_title: "API 密钥",
    api_key_hint: "仅当服务器要求时需要，以 Authorization: Bearer 发送。",
    api_key_placeholder: "粘贴你的密钥",
    remember_key: "在本设备上记住（localStorage）",
    you: "你",
    assistant: "FlashSight",
    limits: (mb, types) => `支持：${types}，最大 ${mb} MB`,
    image_info: (name, kb, w, h) => `${name} · ${kb} KB · ${w}×${h}`,
    err_type: (type, types) => `该文件类型为 ${type || "未知"}；支持的图片类型：${types}。`,
    err_size: (mb, max) => `该图片 ${mb} MB，最大支持 ${max} MB。`,
    err_question: "请先输入问题。",
    err_network: (msg) => `无法连接网关：${msg}`,
    err_http: (status) => `网关返回 HTTP ${status}，没有说明原因。`,
    err_stream_cut: "回答流意外中断。",
    err_auth: "该服务器需要 API 密钥：请在下方填写。",
    stopped: "（已停止）",
    b_route: "路由",
    b_keyword: "关键词",
    b_cache: "描述缓存",
    b_answer_cache: "答案缓存",
    b_degraded: "已降级",
    b_not_degraded: "未降级",
    b_models: "模型",
    b_timings: "耗时",
    b_request: "请求 ID",
    cache_values: { hit: "命中", miss: "未命中", partial: "部分命中", unavailable: "不可用", none: "无" },
    answer_cache_values: { hit: "命中", miss: "未命中", bypass: "跳过（未查询）", unavailable: "不可用", none: "无" },
    stages: { admission: "接入", caption: "描述", vision: "视觉", reasoner: "推理", total: "总计" },
  },
};

const KEY_STORAGE = "flashsight.apiKey";
const LANG_STORAGE = "flashsight.lang";
const IMAGE_PLACEHOLDER = "__FLASHSIGHT_IMAGE_DATA_URL__";

const state = {
  lang: pickLanguage(),
  config: { max_image_bytes: 10 * 1024 * 1024, accepted_types: ["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"], auth_required: false },
  image: null, // {dataUrl, name, type, size, width, height}
  history: [], // OpenAI messages sent so far (the image rides on the first user message)
  controller: null,
  lastQuestion: "",
};

const $ = (id) => document.getElementById(id);

function pickLanguage() {
  const saved = localStorage.getItem(LANG_STORAGE);
  if (saved === "zh" || saved === "en") return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function t(key, ...args) {
  const value = TEXT[state.lang][key] ?? TEXT.en[key] ?? key;
  return typeof value === "function" ? value(...args) : value;
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  $("lang-toggle").textContent = state.lang === "zh" ? "English" : "中文";
  $("send").textContent = state.controller ? t("stop") : t("ask");
  showLimits();
  // badges already on screen are re-rendered from the metadata they came from
  for (const el of document.querySelectorAll(".msg.assistant")) if (el._meta) renderBadges(el, el._meta);
  for (const el of document.querySelectorAll(".msg-role")) el.textContent = t(el.dataset.role === "user" ? "you" : "assistant");
}

function typeNames() {
  return state.config.accepted_types.map((m) => m.replace("image/", "").toUpperCase()).join(", ");
}

function megabytes(bytes) {
  return (bytes / 1024 / 1024).toFixed(1).replace(/\.0$/, "");
}

function showLimits() {
  $("limits").textContent = t("limits", megabytes(state.config.max_image_bytes), typeNames());
}

// ── errors ─────────────────────────────────────────────────────────────────────────
function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// The API's own words when it sent an OpenAI error body, else a plain statement of what happened.
async function errorMessage(response) {
  let text = "";
  try {
    text = await response.text();
    const body = JSON.parse(text);
    const message = body?.error?.message || body?.detail;
    if (message) return String(message);
  } catch (_) { /* not JSON: fall through */ }
  return text.trim() ? `HTTP ${response.status}: ${text.trim().slice(0, 500)}` : t("err_http", response.status);
}

// ── image intake: pick, drop, paste ───────────────────────────────────────────────────
function checkFile(file) {
  if (!state.config.accepted_types.includes(file.type)) return t("err_type", file.type, typeNames());
  if (file.size > state.config.max_image_bytes) {
    return t("err_size", megabytes(file.size), megabytes(state.config.max_image_bytes));
  }
  return null;
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function takeFile(file) {
  if (!file) return;
  const problem = checkFile(file);
  if (problem) {
    showError(problem);
    return;
  }
  clearError();
  const dataUrl = await readAsDataUrl(file);
  const preview = $("preview");
  preview.src = dataUrl;
  await preview.decode().catch(() => {});
  state.image = {
    dataUrl, name: file.name || "pasted.png", type: file.type, size: file.size,
    width: preview.naturalWidth, height: preview.naturalHeight,
  };
  preview.hidden = false;
  preview.alt = state.image.name;
  $("drop-hint").hidden = true;
  $("clear-image").hidden = false;
  $("image-info").textContent = t("image_info", state.image.name, Math.round(file.size / 1024), state.image.width, state.image.height);
  newConversation(); // a new image starts a new conversation about it
}

function clearImage() {
  state.image = null;
  $("preview").hidden = true;
  $("preview").removeAttribute("src");
  $("drop-hint").hidden = false;
  $("clear-image").hidden = true;
  $("image-info").textContent = "";
  $("file-input").value = "";
  newConversation();
}

function wireImageInput() {
  const zone = $("dropzone");
  const input = $("file-input");
  input.accept = state.config.accepted_types.join(",");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => takeFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); takeFile(e.dataTransfer.files[0]); });
  // a file dropped anywhere else must not navigate away from the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (item) { e.preventDefault(); takeFile(item.getAsFile()); }
  });
}

// ── the conversation ────────────────────────────────────────────────────────────────
function newConversation() {
  if (state.controller) state.controller.abort();
  state.history = [];
  for (const el of document.querySelectorAll("#conversation .msg")) el.remove();
  $("empty-hint").hidden = false;
  clearError();
}

function addMessage(role, text) {
  const node = $("message-template").content.firstElementChild.cloneNode(true);
  node.classList.add(role);
  const label = node.querySelector(".msg-role");
  label.dataset.role = role;
  label.textContent = t(role === "user" ? "you" : "assistant");
  node.querySelector(".msg-body").textContent = text;
  $("empty-hint").hidden = true;
  $("conversation").append(node);
  node.scrollIntoView({ block: "nearest" });
  return node;
}

function userMessage(question) {
  // The image goes with the first question; later turns refer back to it through the history.
  if (state.history.length === 0 && state.image) {
    return { role: "user", content: [
      { type: "text", text: question },
      { type: "image_url", image_url: { url: state.image.dataUrl } },
    ] };
  }
  return { role: "user", content: question };
}

function requestBody(messages) {
  return { model: $("route").value, stream: true, messages };
}

function apiHeaders() {
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

async function ask(event) {
  event.preventDefault();
  if (state.controller) { state.controller.abort(); return; }
  const question = $("question").value.trim();
  if (!question) { showError(t("err_question")); return; }
  clearError();
  state.lastQuestion = question;
  const message = userMessage(question);
  const messages = [...state.history, message];
  addMessage("user", question);
  const bubble = addMessage("assistant", "");
  bubble.classList.add("streaming");
  $("question").value = "";
  setBusy(new AbortController());
  let answer = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: apiHeaders(), body: JSON.stringify(requestBody(messages)),
      signal: state.controller.signal,
    });
    if (!response.ok) {
      const text = await errorMessage(response);
      if (response.status === 401) { $("settings").open = true; $("api-key").focus(); }
      throw new Error(response.status === 401 ? `${text}\n${t("err_auth")}` : text);
    }
    // The route is known before the first token: show it at once, the rest comes with the last chunk.
    renderBadges(bubble, headerMeta(response));
    answer = await readStream(response, bubble);
    state.history = [...messages, { role: "assistant", content: answer }];
  } catch (err) {
    bubble.classList.add("failed");
    if (err.name === "AbortError") {
      bubble.querySelector(".msg-body").textContent = `${answer || bubble.querySelector(".msg-body").textContent} ${t("stopped")}`;
    } else {
      const text = err instanceof TypeError ? t("err_network", err.message) : err.message;
      showError(text);
      bubble.querySelector(".msg-body").textContent = text;
    }
  } finally {
    bubble.classList.remove("streaming");
    setBusy(null);
  }
}

function setBusy(controller) {
  state.controller = controller;
  const send = $("send");
  send.textContent = controller ? t("stop") : t("ask");
  send.classList.toggle("stop", Boolean(controller));
}

function headerMeta(response) {
  const route = response.headers.get("X-FlashSight-Route");
  const keyword = response.headers.get("X-FlashSight-Keyword");
  return {
    route,
    matched_keyword: keyword ? decodeURIComponent(keyword) : null,
    request_id: response.headers.get("X-Request-ID"),
    partial: true,
  };
}

// SSE over fetch: events are separated by a blank line; each `data:` line holds one JSON chunk.
async function readStream(response, bubble) {
  const body = bubble.querySelector(".msg-body");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let answer = "";
  let done = false;
  while (!done) {
    const { value, done: ended } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !ended });
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = ended ? "" : events.pop();
    for (const raw of events) {
      const data = raw.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") { done = true; break; }
      const chunk = JSON.parse(data);
      if (chunk.flashsight) renderBadges(bubble, chunk.flashsight);
      if (chunk.error) throw new Error(chunk.error.message || chunk.error.code || t("err_stream_cut"));
      for (const choice of chunk.choices || []) {
        const text = choice.delta?.content;
        if (text) { answer += text; body.textContent = answer; }
      }
    }
    if (ended) break;
  }
  if (!done) throw new Error(t("err_stream_cut"));
  return answer;
}

// ── badges (from the `flashsight` object of the final chunk) ───────────────────────────────
function badge(name, cls, label, value) {
  const el = document.createElement("span");
  el.className = `badge ${cls}`;
  el.dataset.badge = name;
  const b = document.createElement("b");
  b.textContent = label;
  el.append(b, document.createTextNode(` ${value}`));
  return el;
}

function renderBadges(bubble, meta) {
  bubble._meta = meta;
  const box = bubble.querySelector(".badges");
  box.replaceChildren();
  if (meta.route) {
    const keyword = meta.matched_keyword ? ` · ${t("b_keyword")} “${meta.matched_keyword}”` : meta.route_reason && meta.route_reason !== "keyword" ? ` · ${meta.route_reason}` : "";
    box.append(badge("route", `route-${meta.route}`, t("b_route"), `${meta.route}${keyword}`));
  }
  if (meta.partial) return;
  const cache = meta.caption_cache || "none";
  box.append(badge("cache", `cache-${cache}`, t("b_cache"), t("cache_values")[cache] || cache));
  // the exact answer cache: a hit was replayed without calling a model (see docs/api.md)
  const answerCache = meta.answer_cache || "none";
  box.append(badge("answer-cache", `cache-${answerCache}`, t("b_answer_cache"),
    t("answer_cache_values")[answerCache] || answerCache));
  box.append(meta.degraded
    ? badge("degraded", "degraded-yes", t("b_degraded"), meta.degraded_reason || "")
    : badge("degraded", "degraded-no", t("b_not_degraded"), ""));
  const models = Object.entries(meta.models || {}).filter(([, id]) => id).map(([stage, id]) => `${stage}: ${id}`);
  if (models.length) box.append(badge("models", "models", t("b_models"), models.join(" · ")));
  const stages = t("stages");
  const timings = Object.entries(meta.timings_ms || {}).filter(([, ms]) => ms !== null && ms !== undefined)
    .map(([stage, ms]) => `${stages[stage] || stage} ${Math.round(ms)} ms`);
  if (timings.length) box.append(badge("timings", "timings", t("b_timings"), timings.join(" · ")));
  if (meta.request_id) box.append(badge("request", "request", t("b_request"), meta.request_id));
}

// ── copy as curl / Python ───────────────────────────────────────────────────────────────
function pendingMessages() {
  // The call the user is about to make (or just made): history + the question in the box.
  const question = $("question").value.trim() || state.lastQuestion || "订单号是多少?";
  const history = state.history.length ? state.history : [];
  const first = history.length === 0;
  const message = first && state.image
    ? { role: "user", content: [{ type: "text", text: question }, { type: "image_url", image_url: { url: IMAGE_PLACEHOLDER } }] }
    : { role: "user", content: question };
  const withPlaceholder = history.map((m, i) => (i === 0 && Array.isArray(m.content)
    ? { ...m, content: m.content.map((p) => (p.type === "image_url" ? { ...p, image_url: { url: IMAGE_PLACEHOLDER } } : p)) }
    : m));
  return [...withPlaceholder, message];
}

function imageFileName() {
  return (state.image?.name || "image.png").replace(/[^\w.\-\u4e00-\u9fff]/g, "_");
}

function curlCommand() {
  const body = JSON.stringify({ model: $("route").value, stream: true, messages: pendingMessages() }, null, 2);
  // unquoted heredoc: $IMG expands; escape what else the shell would touch
  const escaped = body.replace(/[\\$`]/g, (c) => `\\${c}`).replace(`"${IMAGE_PLACEHOLDER}"`, '"$IMG"');
  const auth = $("api-key").value.trim() ? '  -H "Authorization: Bearer $FLASHSIGHT_API_KEY" \\\n' : "";
  const image = state.image ? `IMG="data:${state.image.type};base64,$(base64 < '${imageFileName()}' | tr -d '\\n')"\n` : "";
  return `${image}curl -sN ${location.origin}/v1/chat/completions \\\n  -H 'Content-Type: application/json' \\\n${auth}  -d @- <<EOF\n${escaped}\nEOF\n`;
}

function pythonSnippet() {
  const messages = JSON.stringify(pendingMessages(), null, 4).replace(`"${IMAGE_PLACEHOLDER}"`, "image");
  const image = state.image
    ? `with open("${imageFileName()}", "rb") as f:\n    image = "data:${state.image.type};base64," + base64.b64encode(f.read()).decode()\n\n`
    : "";
  return `import base64\nimport os\n\nfrom openai import OpenAI\n\n`
    + `client = OpenAI(base_url="${location.origin}/v1", api_key=os.environ.get("FLASHSIGHT_API_KEY", "unused"))\n\n`
    + image
    + `response = client.chat.completions.create(\n    model="${$("route").value}",\n    messages=${messages.replace(/\n/g, "\n    ")},\n)\n`
    + `print(response.choices[0].message.content)\nprint(response.model_extra["flashsight"])  # route, cache, models, timings\n`;
}

async function copy(text) {
  document.body.dataset.lastCopied = text; // lets a test read what was copied
  try {
    await navigator.clipboard.writeText(text);
    $("copy-status").textContent = t("copied");
  } catch (_) {
    // clipboard API needs a secure context (https or localhost): fall back to a hidden textarea
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand && document.execCommand("copy");
    area.remove();
    $("copy-status").textContent = ok ? t("copied") : t("copy_failed");
    if (!ok) console.log(text);
  }
  setTimeout(() => { $("copy-status").textContent = ""; }, 2500);
}

// ── API key (kept in localStorage only when the user ticks "remember") ─────────────────────────
function wireApiKey() {
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) { $("api-key").value = saved; $("remember-key").checked = true; }
  const persist = () => {
    if ($("remember-key").checked && $("api-key").value.trim()) localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    else localStorage.removeItem(KEY_STORAGE);
  };
  $("remember-key").addEventListener("change", persist);
  $("api-key").addEventListener("input", persist);
  if (state.config.auth_required && !saved) $("settings").open = true;
}

function loadConfig() {
  // written into the page by the gateway when it served it (see gateway/web.py)
  try {
    const config = JSON.parse($("flashsight-config").textContent || "{}");
    state.config = { ...state.config, ...config };
  } catch (_) { /* the defaults above; the server checks again anyway */ }
}

async function main() {
  loadConfig();
  applyLanguage();
  wireImageInput();
  wireApiKey();
  $("ask-form").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("ask-form").requestSubmit();
  });
  $("new-chat").addEventListener("click", newConversation);
  $("clear-image").addEventListener("click", clearImage);
  $("copy-curl").addEventListener("click", () => copy(curlCommand()));
  $("copy-python").addEventListener("click", () => copy(pythonSnippet()));
  $("lang-toggle").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_STORAGE, state.lang);
    applyLanguage();
  });
  document.body.dataset.ready = "true";
}

main();
