using System.Globalization;

namespace ContinualMoE.Data.Text;

/// <summary>A parsed text-task spec <c>kind[:path][:argument][:key=value]...</c>: the kind, the path (first part without
/// '='), the argument (second such part: a task order or a comma list of task names), every <c>key=value</c> part, and
/// the options those keys set (over the options given to <see cref="TextTaskCatalog.Load"/>).</summary>
public sealed record TextTaskSpec(string Kind, string? Path, string? Argument, IReadOnlyDictionary<string, string> Settings, TextTaskOptions Options)
{
    /// <summary>The path, or a one-line error naming the spec's syntax when the spec has none.</summary>
    public string RequirePath(string usage) => Path ?? throw new ContinualMoEException($"text tasks '{Kind}' need a path: {usage}");
}

/// <summary>
/// Named text task streams, the text counterpart of <see cref="DatasetCatalog"/>:
/// <c>TextTaskCatalog.Load("cl-benchmark:/data/CL_Benchmark:order1")</c>. Built-in kinds read the published benchmark
/// files (see docs/text-datasets.md); other kinds (the generated text benchmark) plug in with <see cref="Register"/>.
/// Paths may not contain ':'.
/// </summary>
public static class TextTaskCatalog
{
    private sealed record Entry(string Usage, Func<TextTaskSpec, IReadOnlyList<TextTaskData>> Load, bool BuiltIn);

    private static readonly object Gate = new();

    private static readonly Dictionary<string, Entry> Entries = new(StringComparer.OrdinalIgnoreCase)
    {
        ["cl-benchmark"] = new("cl-benchmark:<CL_Benchmark folder>[:order1|order2|order3|<datasets,...>] — O-LoRA's JSON files of the standard CL benchmark (default order1)",
            s => StandardClBenchmark.Load(s.RequirePath("cl-benchmark:<folder>[:order]"), s.Argument ?? "order1", s.Options), true),
        ["long-sequence"] = new("long-sequence:<CL_Benchmark folder>[:order4|order5|order6] — the 15-task long sequence from the same files (default order4)",
            s => StandardClBenchmark.Load(s.RequirePath("long-sequence:<folder>[:order]"), s.Argument ?? "order4", s.Options), true),
        ["cl-benchmark-csv"] = new("cl-benchmark-csv:<folder of *_csv folders>[:order1|order2|order3|<datasets,...>] — the original CSV files of Zhang et al. 2015 (1000 training examples per class by default)",
            s => ZhangCsvLoader.Load(s.RequirePath("cl-benchmark-csv:<folder>[:order]"), s.Argument ?? "order1", s.Options), true),
        ["trace"] = new("trace:<TRACE data folder>[:<datasets,...>] — TRACE's 8 tasks in its order",
            s => TraceBenchmark.Load(s.RequirePath("trace:<folder>"), s.Argument, s.Options), true),
        ["jsonl"] = new("jsonl:<file or folder>[:<task order,...>] — your own tasks, one {\"instruction\",\"input\",\"output\"} object a line",
            s => JsonLinesTaskLoader.Load(s.RequirePath("jsonl:<file or folder>"), s.Argument, s.Options), true),
    };

    /// <summary>The option keys a spec may set, for every kind.</summary>
    public static IReadOnlyList<string> OptionKeys { get; } = ["train-per-class", "test-per-class", "train-limit", "test-limit", "seed", "test-fraction", "instructions"];

    public static IReadOnlyList<string> Names { get { lock (Gate) return Entries.Keys.ToList(); } }

    /// <summary>One line per kind: its syntax and what it reads; then the option keys.</summary>
    public static IReadOnlyList<string> Help
    {
        get
        {
            lock (Gate)
                return [.. Entries.Values.Select(e => e.Usage), $"options (any kind, as :key=value parts): {string.Join(", ", OptionKeys)}"];
        }
    }

    /// <summary>Adds a kind (e.g. <c>generated-text</c>). Its loader receives the parsed spec; keys that are not
    /// <see cref="OptionKeys"/> are left to it in <see cref="TextTaskSpec.Settings"/>. A built-in kind cannot be replaced;
    /// registering a kind again replaces the earlier loader.</summary>
    public static void Register(string kind, string usage, Func<TextTaskSpec, IReadOnlyList<TextTaskData>> loader)
    {
        if (string.IsNullOrWhiteSpace(kind) || kind.Contains(':')) throw new ArgumentException($"invalid text task kind '{kind}'", nameof(kind));
        lock (Gate)
        {
            if (Entries.TryGetValue(kind, out var existing) && existing.BuiltIn) throw new ArgumentException($"'{kind}' is a built-in text task kind", nameof(kind));
            Entries[kind] = new Entry(usage, loader, false);
        }
    }

    /// <summary>True when the spec's kind is known (so a caller can tell a text spec from an image dataset name).</summary>
    public static bool IsKnown(string spec)
    {
        var kind = spec.Split(':', 2)[0].Trim();
        lock (Gate) return Entries.ContainsKey(kind);
    }

    public static IReadOnlyList<TextTaskData> Load(string spec, TextTaskOptions? options = null)
    {
        var parsed = Parse(spec, options);
        Entry entry;
        lock (Gate) entry = Entries[parsed.Kind];
        if (entry.BuiltIn && parsed.Settings.Keys.FirstOrDefault(k => !OptionKeys.Contains(k)) is { } unknown)
            throw new ContinualMoEException($"unknown setting '{unknown}' in text task spec '{spec}'; valid settings: {string.Join(", ", OptionKeys)}");
        var tasks = entry.Load(parsed);
        Validate(spec, tasks);
        return tasks;
    }

    public static TextTaskSpec Parse(string spec, TextTaskOptions? options = null)
    {
        var parts = spec.Split(':');
        var kind = parts[0].Trim();
        lock (Gate)
            if (!Entries.ContainsKey(kind))
                throw new ContinualMoEException($"unknown text tasks '{kind}'; valid kinds: {string.Join(", ", Entries.Keys)} (syntax in docs/text-datasets.md)");
        var positional = new List<string>();
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in parts.Skip(1))
        {
            var equals = part.IndexOf('=');
            if (equals > 0) settings[part[..equals].Trim()] = part[(equals + 1)..].Trim();
            else if (part.Length > 0) positional.Add(part);
        }
        if (positional.Count > 2) throw new ContinualMoEException($"text task spec '{spec}' has {positional.Count} parts besides settings; expected kind:path[:order] (paths may not contain ':')");
        return new TextTaskSpec(kind, positional.ElementAtOrDefault(0), positional.ElementAtOrDefault(1), settings, ApplySettings(spec, settings, options ?? new TextTaskOptions()));
    }

    private static TextTaskOptions ApplySettings(string spec, Dictionary<string, string> settings, TextTaskOptions options)
    {
        foreach (var (key, value) in settings)
            options = key.ToLowerInvariant() switch
            {
                "train-per-class" => options with { TrainPerClass = Count(spec, key, value) },
                "test-per-class" => options with { TestPerClass = Count(spec, key, value) },
                "train-limit" => options with { TrainLimit = Count(spec, key, value) },
                "test-limit" => options with { TestLimit = Count(spec, key, value) },
                "seed" => options with { Seed = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed) ? seed : throw Bad(spec, key, value, "an integer") },
                "test-fraction" => options with
                {
                    TestFraction = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && f > 0 && f < 1 ? f : throw Bad(spec, key, value, "a number between 0 and 1")
                },
                "instructions" => options with { InstructionFile = value },
                _ => options,
            };
        return options;
    }

    private static int Count(string spec, string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw Bad(spec, key, value, "a positive integer");

    private static ContinualMoEException Bad(string spec, string key, string value, string expected) =>
        new($"setting '{key}={value}' in text task spec '{spec}' must be {expected}");

    private static void Validate(string spec, IReadOnlyList<TextTaskData> tasks)
    {
        if (tasks.Count == 0) throw new ContinualMoEException($"text tasks '{spec}' hold no task");
        foreach (var task in tasks)
        {
            if (task.Train.Count == 0) throw new ContinualMoEException($"text task '{task.Name}' of '{spec}' has no training examples");
            if (task.Test.Count == 0) throw new ContinualMoEException($"text task '{task.Name}' of '{spec}' has no test examples");
        }
        var duplicate = tasks.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new ContinualMoEException($"text tasks '{spec}' name the task '{duplicate.Key}' twice");
    }
}
