using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Experiments;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>
/// A sweep specification (docs/sweeps.md): a base run config, axes over any run setting, and exclusions. Its expansion
/// is the cartesian product of the axes in the order they are written (the last axis varies fastest), minus the
/// exclusions; every run gets a stable name made of its axis values, so a sweep folder can be resumed, extended and
/// reported on by name.
/// </summary>
/// <param name="Name">Sweep name (default: the spec file's name without extension).</param>
/// <param name="Base">The base run config: null (the embedded default), a path to a run config or preset (relative to
/// the spec file), or a run config object.</param>
/// <param name="Set">Overrides applied to the base, as on the command line ("key=value", "method.key=value").</param>
/// <param name="Axes">Setting key → values (JSON values: strings, numbers, booleans or null).</param>
/// <param name="Exclude">Partial assignments; a run whose resolved settings match every key of one is left out
/// (an array value matches any of its elements).</param>
/// <param name="Parallel">Runs at once on this machine (default 1); the cores are divided between them.</param>
internal sealed record SweepSpec(string Name, JsonNode? Base, IReadOnlyList<string> Set,
    IReadOnlyList<(string Key, IReadOnlyList<JsonNode?> Values)> Axes, IReadOnlyList<JsonObject> Exclude, int Parallel)
{
    private static readonly HashSet<string> SpecKeys = ["name", "base", "set", "axes", "exclude", "parallel"];

    /// <summary>Reads a spec file; every problem is one line naming the file.</summary>
    public static SweepSpec Load(string path)
    {
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw ContinualMoEException.ForFile(fullPath, "sweep spec not found");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(fullPath), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                   ?? throw ContinualMoEException.ForFile(fullPath, "a sweep spec is a JSON object");
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(fullPath, $"not valid JSON ({e.Message})");
        }
        return FromJson(root, fullPath, Path.GetFileNameWithoutExtension(fullPath));
    }

    /// <summary>Parses a spec object; a string <c>base</c> is resolved against the folder of <paramref name="source"/>
    /// and inlined, so the spec stored in a sweep folder is self-contained.</summary>
    public static SweepSpec FromJson(JsonObject root, string source, string defaultName)
    {
        ContinualMoEException Error(string problem) => ContinualMoEException.ForFile(source, problem);
        foreach (var key in root.Select(p => p.Key).Where(k => !SpecKeys.Contains(k)))
            throw Error($"unknown sweep spec key '{key}'; keys: {string.Join(", ", SpecKeys)}");

        var name = root["name"] is { } n ? n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : throw Error("'name' must be a string") : defaultName;
        if (string.IsNullOrWhiteSpace(name) || SafeName(name) != name) throw Error($"sweep name '{name}' may hold letters, digits, '.', '_' and '-' only");

        JsonNode? baseConfig = root["base"] switch
        {
            null => null,
            JsonObject o => o.DeepClone(),
            JsonValue v when v.GetValueKind() == JsonValueKind.String => LoadBase(v.GetValue<string>(), source),
            _ => throw Error("'base' must be a path to a run config or a run config object"),
        };

        var set = root["set"] switch
        {
            null => [],
            JsonArray a => a.Select(x => x?.GetValueKind() == JsonValueKind.String ? x.GetValue<string>() : throw Error("'set' holds \"key=value\" strings")).ToList(),
            _ => throw Error("'set' must be an array of \"key=value\" strings"),
        };

        var axes = new List<(string, IReadOnlyList<JsonNode?>)>();
        if (root["axes"] is { } axesNode)
        {
            if (axesNode is not JsonObject axesObject) throw Error("'axes' must be an object: setting key → array of values");
            foreach (var (key, values) in axesObject)
            {
                if (values is not JsonArray array || array.Count == 0) throw Error($"axis '{key}' must be a non-empty array of values");
                foreach (var value in array)
                    if (value is JsonObject or JsonArray) throw Error($"axis '{key}': values are strings, numbers, booleans or null");
                var labels = array.Select(ValueLabel).ToList();
                if (labels.Distinct().Count() != labels.Count) throw Error($"axis '{key}' repeats a value");
                axes.Add((key, array.Select(v => v?.DeepClone()).ToList()));
            }
        }

        var exclude = root["exclude"] switch
        {
            null => [],
            JsonArray a => a.Select(x => x as JsonObject ?? throw Error("'exclude' holds objects of settings")).Select(o => (JsonObject)o.DeepClone()).ToList(),
            _ => throw Error("'exclude' must be an array of objects"),
        };

        var parallel = root["parallel"] is { } p
            ? p.GetValueKind() == JsonValueKind.Number && Number(p) is var d && d >= 1 && d == Math.Floor(d) ? (int)d : throw Error("'parallel' must be a whole number >= 1")
            : 1;
        return new SweepSpec(name, baseConfig, set, axes, exclude, parallel);
    }

    private static JsonNode LoadBase(string path, string source)
    {
        var full = Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(source) ?? ".", path));
        if (!File.Exists(full)) throw ContinualMoEException.ForFile(source, $"base config '{path}' not found (looked for {full})");
        // Parsed as a run config so that a typo in it is reported against its own file.
        return JsonNode.Parse(RunConfig.FromJson(File.ReadAllText(full), full).ToJson())!;
    }

    /// <summary>The spec as JSON (base inlined), as stored in the sweep folder.</summary>
    public JsonObject ToJson()
    {
        var axes = new JsonObject();
        foreach (var (key, values) in Axes) axes[key] = new JsonArray(values.Select(v => v?.DeepClone()).ToArray());
        return new JsonObject
        {
            ["name"] = Name,
            ["base"] = Base?.DeepClone(),
            ["set"] = new JsonArray(Set.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["axes"] = axes,
            ["exclude"] = new JsonArray(Exclude.Select(e => (JsonNode?)e.DeepClone()).ToArray()),
            ["parallel"] = Parallel,
        };
    }

    /// <summary>Every run of the sweep, in expansion order, each validated (names of methods, datasets, backbones,
    /// scenario settings) before anything runs.</summary>
    public IReadOnlyList<SweepRun> Expand(string source)
    {
        var baseConfig = (Base is null ? new RunConfig() : RunConfig.FromJson(Base.ToJsonString(), source)).WithOverrides(Set);
        var combinations = new List<List<(string Key, JsonNode? Value)>> { new() };
        foreach (var (key, values) in Axes)
            combinations = combinations.SelectMany(c => values.Select(v => new List<(string, JsonNode?)>(c) { (key, v) })).ToList();

        var runs = new List<SweepRun>();
        foreach (var combination in combinations)
        {
            RunConfig config;
            try
            {
                config = baseConfig.WithOverrides(combination.Select(a => $"{a.Key}={(a.Value is null ? "null" : a.Value.ToJsonString())}"));
            }
            catch (ContinualMoEException e)
            {
                throw ContinualMoEException.ForFile(source, e.Message, e);
            }
            var settings = Settings(config);
            if (Exclude.Any(exclusion => Matches(exclusion, settings, source))) continue;
            try
            {
                RunSession.Validate(config);
            }
            catch (ContinualMoEException e)
            {
                throw ContinualMoEException.ForFile(source, $"run {RunName(combination)}: {e.Message}", e);
            }
            var axes = new JsonObject();
            foreach (var (key, value) in combination) axes[key] = value?.DeepClone();
            runs.Add(new SweepRun(RunName(combination), axes, config));
        }
        if (runs.Count == 0) throw ContinualMoEException.ForFile(source, "the sweep has no runs (every combination is excluded)");
        var duplicate = runs.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw ContinualMoEException.ForFile(source, $"two runs get the name '{duplicate.Key}'; make the axis values differ in letters or digits");
        return runs;
    }

    /// <summary>The run's settings by key: the config's snake_case keys plus "method.key" for method settings.</summary>
    private static JsonObject Settings(RunConfig config)
    {
        var node = JsonSerializer.SerializeToNode(config, RunConfig.Json)!.AsObject();
        if (node["method_settings"] is JsonObject methodSettings)
            foreach (var (key, value) in methodSettings.ToList()) node["method." + key] = value?.DeepClone();
        return node;
    }

    private static bool Matches(JsonObject exclusion, JsonObject settings, string source)
    {
        foreach (var (key, wanted) in exclusion)
        {
            if (!settings.ContainsKey(key) && !key.StartsWith("method.", StringComparison.Ordinal))
                throw ContinualMoEException.ForFile(source, $"exclusion names unknown setting '{key}'");
            var actual = settings[key];
            var candidates = wanted is JsonArray any ? any.ToList() : [wanted];
            if (!candidates.Any(c => SameValue(c, actual))) return false;
        }
        return true;
    }

    /// <summary>JSON equality with numbers compared by value (0 matches 0.0).</summary>
    internal static bool SameValue(JsonNode? a, JsonNode? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a.GetValueKind() == JsonValueKind.Number && b.GetValueKind() == JsonValueKind.Number)
            return Number(a) == Number(b);
        return JsonNode.DeepEquals(a, b);
    }

    /// <summary>Stable run name: method and dataset values as they are, other axes as key + value
    /// (e.g. <c>smope-generated-tasks5-seed0</c>); characters other than letters, digits, '.', '_' and '-' become '_'.</summary>
    internal static string RunName(IEnumerable<(string Key, JsonNode? Value)> assignments)
    {
        var parts = assignments.Select(a => a.Key is "method" or "dataset"
            ? ValueLabel(a.Value)
            : (a.Key.StartsWith("method.", StringComparison.Ordinal) ? a.Key["method.".Length..] : a.Key) + ValueLabel(a.Value)).ToList();
        return parts.Count == 0 ? "run" : SafeName(string.Join('-', parts));
    }

    internal static string ValueLabel(JsonNode? value) => value switch
    {
        null => "none",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => Number(v).ToString(CultureInfo.InvariantCulture),
        _ => value.ToJsonString(),
    };

    private static double Number(JsonNode node) => double.Parse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture);

    internal static string SafeName(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text) builder.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        return builder.ToString();
    }
}

/// <summary>One run of a sweep: its stable name, its axis values and its resolved config.</summary>
internal sealed record SweepRun(string Name, JsonObject Axes, RunConfig Config);
