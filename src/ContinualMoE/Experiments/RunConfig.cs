using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace ContinualMoE.Experiments;

/// <summary>
/// Everything that defines a continual-learning run. Written to the run folder as config.json, read back from
/// --config files; JSON names are snake_case. The defaults are the embedded default run.
/// </summary>
public sealed record RunConfig
{
    public string Method { get; init; } = "smope";
    public string Dataset { get; init; } = "generated";
    /// <summary>Dataset folder; null means the dataset's default place (cache, or the Debian package for Fashion-MNIST).</summary>
    public string? DataRoot { get; init; }
    public bool Download { get; init; }
    /// <summary>Image folders (imagenet-r, image-folder): [train list, test list] naming the split, e.g. the official
    /// SMoPE ImageNet-R lists; null: the folder's train/ and test/, else a seeded 80/20 split.</summary>
    public string[]? SplitFiles { get; init; }
    /// <summary>Image folders without train/ and test/ (and no split_files): per-class (seeded 80/20 per class) or
    /// random-split (the official HiDe-Prompt / NoRGa ImageNet-R split: torch.utils.data.random_split of the whole
    /// folder, 80/20, under torch.manual_seed(split_seed)).</summary>
    public string Split { get; init; } = "per-class";
    /// <summary>Seed of that split (both kinds; independent of the run's seed). The official HiDe-Prompt scripts split the
    /// folder once, in their first run (seed 42), and the later seeds reuse it, so those paper presets state 42.</summary>
    public int SplitSeed { get; init; }
    /// <summary>Backbone: a registry name or an explicit geometry (<see cref="Backbones.BackboneSpec"/>).</summary>
    public string Backbone { get; init; } = DefaultBackbone;
    /// <summary>Weights file; "pretrained-default" means the cached backbone pretrained on the generated upstream classes.</summary>
    public string? BackboneWeights { get; init; } = PretrainedDefault;
    public int Tasks { get; init; } = 5;
    public int? FirstTaskClasses { get; init; }
    public string? ClassOrderFile { get; init; }
    /// <summary>Generator of the seeded class order: project, numpy (np.random.seed + permutation) or python
    /// (random.seed + random.shuffle); see <see cref="Scenarios.ClassOrderGenerator"/>. Ignored with class_order_file.</summary>
    public string ClassOrder { get; init; } = "project";
    public bool TaskIncremental { get; init; }
    /// <summary>Scenario kind: class-incremental, overlap or blurry (docs/scenarios.md).</summary>
    public string Scenario { get; init; } = "class-incremental";
    /// <summary>Training images per class per task, drawn from the seed; null: all.</summary>
    public int? Shots { get; init; }
    /// <summary>Overlap scenario: fraction rho (0..1) of each later task's classes seen in earlier tasks.</summary>
    public double Overlap { get; init; }
    /// <summary>Blurry scenario: fraction (0..1) of each task's training images from other tasks' classes.</summary>
    public double Blurry { get; init; }
    /// <summary>Also train each task alone (same method and backbone) for forward transfer; costs about one more run's training.</summary>
    public bool ForwardTransfer { get; init; }
    public int Epochs { get; init; } = 3;
    public int BatchSize { get; init; } = 64;
    /// <summary>Training epochs skip their last incomplete batch after shuffling, as torch's DataLoader(drop_last=True)
    /// (the official SMoPE training loader; HiDe-Prompt / NoRGa keep it). Evaluation and statistics passes see every image.</summary>
    public bool DropLast { get; init; }
    public double LearningRate { get; init; } = 0.005;
    public int Seed { get; init; } = 1993;
    public string Device { get; init; } = "cpu";
    /// <summary>Number format of the frozen backbone: fp32, bf16, or fp16 on CUDA (<see cref="Backbones.ComputePrecision"/>),
    /// or auto: bf16 for a method declared bf16-safe on a CPU with native bf16, else fp32 (<see cref="PrecisionPolicy"/>;
    /// the run records the resolved value). Methods' own parameters, statistics and losses stay fp32. Image runs; text
    /// runs set text.dtype instead.</summary>
    public string Precision { get; init; } = Backbones.ComputePrecision.Fp32;
    public int? Workers { get; init; }
    /// <summary>Smallest area fraction of RandomResizedCrop during training. 0.08 (torchvision, the papers at 224 px)
    /// leaves a few pixels of a 32 px image, so the small-image default is 0.5.</summary>
    public double CropScaleMin { get; init; } = 0.5;
    /// <summary>Normalisation, interpolation, test transform and colour jitter (<see cref="Data.Transforms.ImageSettings"/>).</summary>
    public Data.Transforms.ImageSettings Input { get; init; } = new();
    /// <summary>Generated benchmark: continual classes, images per class (train / test).</summary>
    public int GeneratedClasses { get; init; } = 20;
    public int GeneratedTrainPerClass { get; init; } = 100;
    public int GeneratedTestPerClass { get; init; } = 50;
    /// <summary>Use at most this many training images per class (data-scarce runs and quick experiments); null: all.</summary>
    public int? TrainPerClassLimit { get; init; }
    public int? TestPerClassLimit { get; init; }
    public Dictionary<string, JsonElement> MethodSettings { get; init; } = [];
    /// <summary>Classes the learner's heads are sized for (null: the dataset's); more leaves room for classes a deployed
    /// model learns later (<see cref="Scenarios.TaskListScenario"/>).</summary>
    public int? ClassCapacity { get; init; }
    /// <summary>Tasks the learner's pools are sized for (null: <see cref="Tasks"/>).</summary>
    public int? TaskCapacity { get; init; }
    /// <summary>Text runs (dataset generated-text or text task files): prompt format, lengths, model dtype (docs/text-tasks.md).</summary>
    public TextRunSettings Text { get; init; } = new();

    public const string DefaultBackbone = "vit_micro_patch4_32";
    public const string PretrainedDefault = "pretrained-default";

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        PropertyNameCaseInsensitive = true,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static RunConfig FromJson(string json, string source)
    {
        try { return JsonSerializer.Deserialize<RunConfig>(json, Json) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw ContinualMoEException.ForFile(source, $"not a valid run config: {e.Message}"); }
    }

    /// <summary>Applies "key=value" overrides (snake_case keys; values parsed as JSON, else taken as strings;
    /// "method.key=value" sets a method setting).</summary>
    public RunConfig WithOverrides(IEnumerable<string> assignments)
    {
        var node = JsonSerializer.SerializeToNode(this, Json)!.AsObject();
        foreach (var assignment in assignments)
        {
            var split = assignment.IndexOf('=');
            if (split <= 0) throw new ContinualMoEException($"override '{assignment}' is not key=value");
            var key = assignment[..split].Trim();
            var value = ParseValue(assignment[(split + 1)..]);
            if (key.StartsWith("method."))
            {
                var settings = node["method_settings"] as JsonObject ?? new JsonObject();
                settings[key["method.".Length..]] = value;
                node["method_settings"] = settings;
                continue;
            }
            if (!node.ContainsKey(key))
                throw new ContinualMoEException($"unknown setting '{key}'; settings: {string.Join(", ", node.Select(p => p.Key))}");
            node[key] = value;
        }
        return FromJson(node.ToJsonString(), "overrides");
    }

    private static JsonNode? ParseValue(string text)
    {
        try { return JsonNode.Parse(text); }
        catch (JsonException) { return JsonValue.Create(text); }
    }

    /// <summary>Settings that differ between two configs, for --resume refusals.</summary>
    public IReadOnlyList<string> Differences(RunConfig other)
    {
        var a = JsonSerializer.SerializeToNode(this, Json)!.AsObject();
        var b = JsonSerializer.SerializeToNode(other, Json)!.AsObject();
        return a.Select(p => p.Key)
            .Where(k => !JsonNode.DeepEquals(a[k], b[k]))
            .Select(k => $"{k}: {a[k]?.ToJsonString() ?? "null"} vs {b[k]?.ToJsonString() ?? "null"}")
            .ToList();
    }
}
