using System.Reflection;
using System.Text.Json;
using ContinualMoE.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>Marks a class as a continual-learning method available by <see cref="Name"/>. The class implements
/// <see cref="IContinualLearner"/> and has a constructor taking a <see cref="MethodContext"/>; adding a method means
/// adding its file, nothing else.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class ContinualMethodAttribute(string name, string summary) : Attribute
{
    public string Name { get; } = name;
    public string Summary { get; } = summary;
    /// <summary>The inputs the method runs on (Mammoth's COMPATIBILITY): images only unless it says so. A method that
    /// lists text uses only the modality-neutral interfaces (<see cref="AdaptedReadout"/>, <see cref="Data.Batch"/>).</summary>
    public Data.InputModality Modalities { get; init; } = Data.InputModality.Image;
    /// <summary>Measured to stay within 0.3 points of fp32 final accuracy in bf16 on both the embedded default and split
    /// Fashion-MNIST (issue 16 §1; the figures are in docs/methods/precision.md): <c>precision: auto</c> then runs its
    /// backbone in bf16 on a CPU with native bf16. False (the default) keeps fp32 under auto.</summary>
    public bool Bf16Safe { get; init; }
}

/// <summary>What every method is built from. <see cref="Backbone"/> is the ViT of an image run; a text run has none
/// and gives the language model in <see cref="Language"/> instead (only methods that support text are built then).</summary>
public sealed record MethodContext(
    VisionTransformer Backbone,
    int ClassCount,
    int TaskCount,
    Device Device,
    int Seed,
    TrainingSettings Training,
    MethodSettings Settings)
{
    public Backbones.Language.LanguageTaskModel? Language { get; init; }
    public Data.InputModality Modality => Language is null ? Data.InputModality.Image : Data.InputModality.Text;
    /// <summary>The frozen backbone whose linear layers low-rank methods adapt (the ViT or the language model).</summary>
    public ITransformerBackbone AdaptableBackbone => Language?.Model ?? (ITransformerBackbone)Backbone;
}

/// <summary>Helpers for building a method's modules.</summary>
public static class MethodContextExtensions
{
    /// <summary>The modality-neutral forward for methods that adapt linear layers: on a ViT a new linear head over the
    /// scenario's classes (drawn from the torch generator now), on a language model label scoring and the LM loss.</summary>
    public static AdaptedReadout NewReadout(this MethodContext context) => context.Language is { } language
        ? new Backbones.Language.LanguageModelReadout(language.Model, language.Labels)
        : new ImageClassifierReadout(context.Backbone, TorchSharp.torch.nn.Linear(context.Backbone.EmbedDim, context.ClassCount));

    /// <summary>The requested prompt blocks that exist in the backbone, sorted (paper settings name blocks 0-5 of a
    /// 12-block ViT-B; smaller backbones keep the ones they have). None left is an error naming the method and the
    /// setting; with <paramref name="emptyAllowed"/> an explicitly empty list is kept (an ablation such as DualPrompt
    /// without G-prompts), but a non-empty list of which no block exists is still an error.</summary>
    public static IReadOnlyList<int> PromptBlocks(this MethodContext context, IEnumerable<int> requested, string method,
        string setting = "blocks", bool emptyAllowed = false)
    {
        var depth = context.Backbone.Config.Depth;
        var wanted = requested.ToList();
        var blocks = wanted.Where(b => b >= 0 && b < depth).Distinct().Order().ToList();
        if (blocks.Count == 0 && !(emptyAllowed && wanted.Count == 0))
            throw new ContinualMoEException($"{method}: none of the {setting} [{string.Join(", ", wanted)}] exists in a {depth}-block backbone");
        return blocks;
    }
}

/// <summary>Run-level training settings that methods use as their defaults (a method's own settings may override).</summary>
public sealed record TrainingSettings(int Epochs, double LearningRate, int BatchSize);

/// <summary>Method-specific settings by name (from a JSON config or <c>--set key=value</c>), bound to a method's
/// options record. Unknown keys are an error that lists the valid ones. A key that is a method's name holds settings for
/// that method only (an object, applied after the shared ones), so that one config can give methods with different
/// option names their own values in a <c>compare</c> (e.g. <c>"seq-lora": {"rank": 16}, "seta": {"shared_rank": 16}</c>);
/// other methods skip it.</summary>
public sealed class MethodSettings(IReadOnlyDictionary<string, JsonElement>? values = null)
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    public IReadOnlyDictionary<string, JsonElement> Values { get; } = values ?? new Dictionary<string, JsonElement>();

    public static MethodSettings Empty { get; } = new();

    /// <summary>Starts from <paramref name="defaults"/> and overrides the properties named in the settings: the shared
    /// ones, then those of the section named <paramref name="methodName"/>.</summary>
    public T Bind<T>(T defaults, string methodName) where T : class
    {
        var merged = JsonSerializer.SerializeToNode(defaults, Json)!.AsObject();
        var known = merged.Select(p => p.Key).ToList();
        void Apply(string key, JsonElement value)
        {
            var match = known.FirstOrDefault(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase));
            if (match is null)
                throw new ContinualMoEException($"method '{methodName}' has no setting '{key}'; its settings: {string.Join(", ", known)}");
            merged[match] = System.Text.Json.Nodes.JsonNode.Parse(value.GetRawText());
        }
        foreach (var (key, value) in Values)
            if (!MethodRegistry.IsMethod(key)) Apply(key, value);
        foreach (var (key, section) in Values.Where(p => string.Equals(p.Key, methodName, StringComparison.OrdinalIgnoreCase)))
        {
            if (section.ValueKind != JsonValueKind.Object)
                throw new ContinualMoEException($"method setting '{key}' names a method, so it must be an object of that method's settings");
            foreach (var property in section.EnumerateObject()) Apply(property.Name, property.Value);
        }
        try { return merged.Deserialize<T>(Json)!; }
        catch (JsonException e) { throw new ContinualMoEException($"method '{methodName}': bad setting value ({e.Message})"); }
    }
}

/// <summary>All methods marked with <see cref="ContinualMethodAttribute"/> in this assembly.</summary>
public static class MethodRegistry
{
    private static readonly Lazy<Dictionary<string, (Type Type, ContinualMethodAttribute Info)>> Methods = new(() =>
        typeof(MethodRegistry).Assembly.GetTypes()
            .Select(t => (Type: t, Info: t.GetCustomAttribute<ContinualMethodAttribute>()))
            .Where(x => x.Info is not null)
            .ToDictionary(x => x.Info!.Name, x => (x.Type, x.Info!), StringComparer.OrdinalIgnoreCase));

    public static IReadOnlyList<string> Names => Methods.Value.Keys.Order().ToList();

    public static string Summary(string name) => Entry(name).Info.Summary;

    /// <summary>Throws the unknown-name error (listing the available methods) unless <paramref name="name"/> is a method.</summary>
    public static void EnsureKnown(string name) => Entry(name);

    public static bool IsMethod(string name) => Methods.Value.ContainsKey(name);

    private static (Type Type, ContinualMethodAttribute Info) Entry(string name) =>
        Methods.Value.TryGetValue(name, out var entry)
            ? entry
            : throw new ContinualMoEException($"unknown method '{name}'; available: {string.Join(", ", Names)}");

    /// <summary>Whether method <paramref name="name"/> is declared bf16-safe (<see cref="ContinualMethodAttribute.Bf16Safe"/>).</summary>
    public static bool IsBf16Safe(string name) => Entry(name).Info.Bf16Safe;

    /// <summary>The inputs method <paramref name="name"/> runs on.</summary>
    public static Data.InputModality Modalities(string name) => Entry(name).Info.Modalities;

    /// <summary>Throws a one-line error unless method <paramref name="name"/> runs on <paramref name="modality"/>.</summary>
    public static void EnsureSupports(string name, Data.InputModality modality)
    {
        if (Modalities(name).HasFlag(modality)) return;
        var supporting = Names.Where(n => Modalities(n).HasFlag(modality));
        throw new ContinualMoEException(
            $"method '{name}' does not run on {modality.ToString().ToLowerInvariant()} tasks; methods that do: {string.Join(", ", supporting)}");
    }

    public static IContinualLearner Create(string name, MethodContext context)
    {
        var entry = Entry(name);
        EnsureSupports(name, context.Modality);
        try { return (IContinualLearner)Activator.CreateInstance(entry.Type, context)!; }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }
}
