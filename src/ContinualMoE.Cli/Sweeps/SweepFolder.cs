using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Experiments;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>
/// The folder of a sweep (docs/sweeps.md):
/// <c>sweep.json</c> (the spec with its base inlined, and the runs in index order), <c>configs/NAME.json</c> (each run's
/// config: <c>continual-moe run --config</c> reruns it by hand), <c>runs/NAME/</c> (run folders), <c>claims/NAME.lock</c>
/// (held by the process executing the run), <c>attempts.jsonl</c> (what every executor did), <c>logs/</c>,
/// <c>slurm/</c>, <c>k8s/</c>, and <c>report/</c>. Every path inside is relative to the folder, so the folder can be
/// mounted elsewhere (a cluster's shared file system, a Kubernetes volume).
/// </summary>
internal sealed class SweepFolder
{
    public const string PlanFileName = "sweep.json";
    private const string Format = "continual-moe-sweep/1";

    private SweepFolder(string path, string name, JsonObject spec, IReadOnlyList<SweepRun> runs)
    {
        Path = path;
        Name = name;
        Spec = spec;
        Runs = runs;
    }

    public string Path { get; }
    public string Name { get; }
    public JsonObject Spec { get; }
    /// <summary>The runs in index order: the index is a Slurm array task id or a Kubernetes completion index.</summary>
    public IReadOnlyList<SweepRun> Runs { get; }

    /// <summary>Names of the axes (setting keys) in spec order.</summary>
    public IReadOnlyList<string> AxisKeys => Spec["axes"] is JsonObject axes ? axes.Select(a => a.Key).ToList() : [];

    public string RunFolder(SweepRun run) => System.IO.Path.Combine(Path, "runs", run.Name);
    public string ConfigFile(SweepRun run) => System.IO.Path.Combine(Path, "configs", run.Name + ".json");
    public string ClaimFile(SweepRun run) => System.IO.Path.Combine(Path, "claims", run.Name + ".lock");
    public string LogFile(SweepRun run) => System.IO.Path.Combine(Path, "logs", run.Name + ".log");
    public string AttemptsFile => System.IO.Path.Combine(Path, "attempts.jsonl");
    public string Subfolder(string name) => Directory.CreateDirectory(System.IO.Path.Combine(Path, name)).FullName;

    public bool IsComplete(SweepRun run) => RunSession.IsComplete(RunFolder(run));

    /// <summary>
    /// Creates the folder for a spec, or opens the one it made before. An earlier plan keeps its runs and their indices
    /// (Slurm and Kubernetes tasks address runs by index); runs a widened spec adds are appended. A run whose config
    /// changed, or that the spec no longer has, is refused: its results would not be what the spec says.
    /// </summary>
    public static SweepFolder Prepare(string path, SweepSpec spec, string specSource)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        var expanded = spec.Expand(specSource);
        var runs = expanded.ToList();
        if (File.Exists(System.IO.Path.Combine(fullPath, PlanFileName)))
        {
            var earlier = Open(fullPath);
            var now = expanded.ToDictionary(r => r.Name);
            foreach (var run in earlier.Runs)
            {
                if (!now.TryGetValue(run.Name, out var current))
                    throw ContinualMoEException.ForFile(fullPath, $"the sweep folder has run '{run.Name}', which this spec no longer makes; use another --output for a different sweep");
                var differences = run.Config.Differences(current.Config);
                if (differences.Count > 0)
                    throw ContinualMoEException.ForFile(fullPath, $"run '{run.Name}' has a different config in this spec ({string.Join("; ", differences)}); use another --output");
            }
            var known = earlier.Runs.Select(r => r.Name).ToHashSet();
            runs = [.. earlier.Runs, .. expanded.Where(r => !known.Contains(r.Name))];
        }
        else if (Directory.Exists(fullPath) && Directory.EnumerateFileSystemEntries(fullPath).Any())
        {
            throw ContinualMoEException.ForFile(fullPath, $"folder exists, is not empty and has no {PlanFileName}; choose another --output");
        }
        Directory.CreateDirectory(fullPath);
        var folder = new SweepFolder(fullPath, spec.Name, spec.ToJson(), runs);
        folder.Save();
        return folder;
    }

    private void Save()
    {
        var runs = new JsonArray();
        for (var i = 0; i < Runs.Count; i++)
            runs.Add(new JsonObject
            {
                ["index"] = i,
                ["name"] = Runs[i].Name,
                ["axes"] = Runs[i].Axes.DeepClone(),
                ["config"] = JsonNode.Parse(Runs[i].Config.ToJson()),
            });
        var plan = new JsonObject { ["format"] = Format, ["name"] = Name, ["spec"] = Spec.DeepClone(), ["runs"] = runs };
        AtomicFile.WriteAllText(System.IO.Path.Combine(Path, PlanFileName), plan.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        foreach (var run in Runs)
        {
            var file = ConfigFile(run);
            var json = run.Config.ToJson() + "\n";
            if (!File.Exists(file) || File.ReadAllText(file) != json) AtomicFile.WriteAllText(file, json);
        }
    }

    /// <summary>Whether <paramref name="file"/> is a sweep folder's plan (what <see cref="Save"/> writes) rather than a spec.</summary>
    public static bool IsPlan(string file)
    {
        try { return JsonNode.Parse(File.ReadAllText(file)) is JsonObject o && o["format"] is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == Format; }
        catch (JsonException) { return false; }
    }

    /// <summary>Opens an existing sweep folder (for sweep-task, report, and re-submission).</summary>
    public static SweepFolder Open(string path)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        var planPath = System.IO.Path.Combine(fullPath, PlanFileName);
        if (!File.Exists(planPath)) throw ContinualMoEException.ForFile(fullPath, $"not a sweep folder (no {PlanFileName})");
        try
        {
            var plan = JsonNode.Parse(File.ReadAllText(planPath))!.AsObject();
            if (plan["format"]?.GetValue<string>() != Format) throw ContinualMoEException.ForFile(planPath, $"not a {Format} plan");
            var runs = plan["runs"]!.AsArray().Select((r, i) =>
            {
                if (r!["index"]!.GetValue<int>() != i) throw ContinualMoEException.ForFile(planPath, $"run {i} has index {r["index"]}");
                return new SweepRun(r["name"]!.GetValue<string>(), r["axes"]!.AsObject().DeepClone().AsObject(),
                    RunConfig.FromJson(r["config"]!.ToJsonString(), planPath));
            }).ToList();
            return new SweepFolder(fullPath, plan["name"]!.GetValue<string>(), plan["spec"]!.AsObject().DeepClone().AsObject(), runs);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw ContinualMoEException.ForFile(planPath, $"unreadable sweep plan ({e.Message.Split('\n')[0]})", e);
        }
    }

    /// <summary>Appends one line to attempts.jsonl under a record lock, so lines from concurrent executors neither
    /// interleave nor overwrite each other. .NET opens <c>FileMode.Append</c> without O_APPEND (it seeks to the end once),
    /// so two Slurm tasks that started at the same moment wrote at the same offset and one "started" line was lost;
    /// the lock makes the seek and the write one step.</summary>
    public void RecordAttempt(SweepRun run, string outcome, string? detail = null, int? exitCode = null)
    {
        var entry = new JsonObject
        {
            ["time"] = DateTimeOffset.UtcNow.ToString("O"),
            ["run"] = run.Name,
            ["index"] = Runs.ToList().IndexOf(run),
            ["event"] = outcome,
            ["host"] = Environment.MachineName,
            ["pid"] = Environment.ProcessId,
            ["executor"] = Executor(),
        };
        if (exitCode is int code) entry["exit_code"] = code;
        if (detail is not null) entry["detail"] = detail;
        var line = System.Text.Encoding.UTF8.GetBytes(entry.ToJsonString() + "\n");
        lock (AttemptsGate)   // record locks are per process: threads of one process take turns here
        {
            using var stream = new FileStream(AttemptsFile, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            LockFirstByte(stream);
            try
            {
                stream.Seek(0, SeekOrigin.End);
                stream.Write(line);
                stream.Flush(flushToDisk: true);
            }
            finally { stream.Unlock(0, 1); }
        }
    }

    private static readonly object AttemptsGate = new();

    /// <summary>Takes the record lock on the file's first byte (another executor holds it for one write at most), or fails
    /// after 30 s naming the file.</summary>
    private void LockFirstByte(FileStream stream)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                stream.Lock(0, 1);
                return;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5);
            }
            catch (IOException e)
            {
                throw ContinualMoEException.ForFile(AttemptsFile, "stayed locked by another executor for 30 s", e);
            }
        }
    }

    /// <summary>Every attempt recorded so far (lines that do not parse, e.g. torn by a crash, are skipped).</summary>
    public IReadOnlyList<SweepAttempt> Attempts()
    {
        if (!File.Exists(AttemptsFile)) return [];
        var attempts = new List<SweepAttempt>();
        foreach (var line in File.ReadAllLines(AttemptsFile))
        {
            try
            {
                var entry = JsonNode.Parse(line)!.AsObject();
                attempts.Add(new SweepAttempt(entry["run"]!.GetValue<string>(), entry["event"]!.GetValue<string>(),
                    entry["detail"]?.GetValue<string>(), entry["exit_code"]?.GetValue<int>(), entry["executor"]?.GetValue<string>() ?? ""));
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException) { }
        }
        return attempts;
    }

    private static string Executor() =>
        Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") is { } job
            ? $"slurm:{job}_{Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID")}"
            : Environment.GetEnvironmentVariable("JOB_COMPLETION_INDEX") is { } index ? $"k8s:{Environment.MachineName}:{index}" : "local";
}

/// <summary>One line of attempts.jsonl.</summary>
internal sealed record SweepAttempt(string Run, string Event, string? Detail, int? ExitCode, string Executor);

/// <summary>
/// Exclusive claim on one run: a <see cref="FileLock"/> on claims/NAME.lock, held for as long as the process executes
/// the run. The kernel drops it when the process dies however it dies, so a killed sweep leaves no stale claim; a second
/// executor sees the lock held and leaves the run alone.
/// </summary>
internal sealed class SweepClaim : IDisposable
{
    private readonly FileLock _lock;

    private SweepClaim(FileLock held) => _lock = held;

    /// <summary>The claim, or null when another process holds it.</summary>
    public static SweepClaim? TryAcquire(string path) => FileLock.TryAcquire(path) is { } held ? new SweepClaim(held) : null;

    /// <summary>Whether some process holds the claim now.</summary>
    public static bool IsHeld(string path) => FileLock.IsHeld(path);

    public void Dispose() => _lock.Dispose();
}
