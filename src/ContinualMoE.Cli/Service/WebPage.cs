namespace ContinualMoE.Cli.Service;

/// <summary>The service's single page: predict an uploaded image, the task history, the accuracy matrix and expert
/// utilisation, and a learning job's progress. Plain HTML and fetch; the token (if the service has one) is kept in the page.</summary>
internal static class WebPage
{
    public const string Html = """
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ContinualMoE model</title>
<style>
body{font-family:sans-serif;margin:1.5em;max-width:1100px;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.plots img{max-width:520px;margin-right:1em;border:1px solid #ddd}
progress{width:320px} .err{color:#b00}
</style></head>
<body>
<h1>ContinualMoE model <span id="summary"></span></h1>
<p><label>Bearer token (if the service needs one): <input id="token" type="password" size="24"></label></p>
<h2>Predict</h2>
<input id="image" type="file" accept="image/*"> <button id="predict">Predict</button>
<div id="prediction"></div>
<h2>Tasks learned</h2>
<table id="tasks"><thead><tr><th>task</th><th>classes</th><th>source</th><th>learned</th><th>train / test images</th></tr></thead><tbody></tbody></table>
<h2>Accuracy matrix and expert utilisation</h2>
<div class="plots"><img id="accuracy" alt="accuracy matrix"><img id="experts" alt="expert utilisation"></div>
<h2>Learn a new task</h2>
<input id="path" size="50" placeholder="image folder under a data root"> <button id="learn">Learn</button>
<div id="job"><progress id="jobbar" max="1" value="0"></progress> <span id="jobtext">no job</span></div>
<script>
const tok = document.getElementById('token');
tok.value = localStorage.getItem('cmoe-token') || '';
tok.onchange = () => { localStorage.setItem('cmoe-token', tok.value); refresh(); };
const headers = () => tok.value ? { 'Authorization': 'Bearer ' + tok.value } : {};
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
async function plot(id, name) {
  const r = await fetch('/plots/' + name, { headers: headers() });
  const img = document.getElementById(id);
  if (r.ok) { img.src = URL.createObjectURL(await r.blob()); img.style.display = ''; } else img.style.display = 'none';
}
async function refresh() {
  const r = await fetch('/model', { headers: headers() });
  if (!r.ok) { document.getElementById('summary').innerHTML = '<span class="err">' + esc((await r.json()).error) + '</span>'; return; }
  const m = await r.json();
  document.getElementById('summary').textContent = `(${m.method}, version ${m.version}, ${m.classes.length} classes, ${m.tasks.length} tasks)`;
  document.querySelector('#tasks tbody').innerHTML = m.tasks.map(t =>
    `<tr><td>${t.index + 1}</td><td>${esc(t.classes.map(c => m.classes[c]).join(', '))}</td><td>${esc(t.source.path ?? t.source.dataset ?? ('run task ' + (t.source.run_task + 1)))}</td>` +
    `<td>${esc(t.learned_at)}</td><td>${t.train_images} / ${t.test_images}</td></tr>`).join('');
  await plot('accuracy', 'accuracy.png'); await plot('experts', 'experts.png');
}
document.getElementById('predict').onclick = async () => {
  const file = document.getElementById('image').files[0];
  if (!file) return;
  const form = new FormData(); form.append('image', file);
  const r = await fetch('/predict?top_k=3', { method: 'POST', body: form, headers: headers() });
  const body = await r.json();
  const out = document.getElementById('prediction');
  if (!r.ok) { out.innerHTML = '<p class="err">' + esc(body.error) + '</p>'; return; }
  const p = body.predictions[0];
  out.innerHTML = '<table id="predtable"><tr><th>class</th><th>probability</th></tr>' +
    p.top.map(c => `<tr><td>${esc(c.name)}</td><td>${(100 * c.probability).toFixed(1)}%</td></tr>`).join('') + '</table>' +
    (p.predicted_task != null ? `<p>inferred task ${p.predicted_task + 1}</p>` : '') +
    (p.routing ? '<p id="experts-chosen">chosen experts (weight):<br>' + p.routing.map(r =>
      esc(r.site) + ': ' + r.experts.map((e, i) => `${e} (${+r.weights[i].toFixed(2)})`).join(' ')).join('<br>') + '</p>' : '');
};
document.getElementById('learn').onclick = async () => {
  const r = await fetch('/tasks', { method: 'POST', headers: { ...headers(), 'Content-Type': 'application/json' },
    body: JSON.stringify({ path: document.getElementById('path').value }) });
  const job = await r.json();
  if (!r.ok) { document.getElementById('jobtext').innerHTML = '<span class="err">' + esc(job.error) + '</span>'; return; }
  poll(job.id);
};
async function poll(id) {
  const r = await fetch('/jobs/' + id, { headers: headers() });
  const job = await r.json();
  document.getElementById('jobbar').value = job.progress;
  document.getElementById('jobtext').textContent = `${job.state}: ${job.stage}` + (job.error ? ' (' + job.error + ')' : '');
  if (job.state === 'running') setTimeout(() => poll(id), 500); else refresh();
}
refresh();
</script>
</body></html>
""";
}
