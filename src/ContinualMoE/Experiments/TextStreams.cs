using ContinualMoE.Backbones.Language;
using ContinualMoE.Data.Text;
using TorchSharp;

namespace ContinualMoE.Experiments;

/// <summary>The run config's text settings (<c>text</c> in config.json; docs/text-tasks.md).</summary>
public sealed record TextRunSettings
{
    /// <summary>plain or chat (<see cref="TextPromptFormat"/>).</summary>
    public string PromptFormat { get; init; } = TextPromptFormat.Plain;
    /// <summary>Prompts longer than this keep their last tokens.</summary>
    public int MaxPromptTokens { get; init; } = 256;
    /// <summary>Expected outputs (and label texts) longer than this are cut.</summary>
    public int MaxOutputTokens { get; init; } = 64;
    /// <summary>Dtype of the language model: float32, bfloat16 or float16.</summary>
    public string Dtype { get; init; } = "float32";

    public torch.ScalarType ScalarType => Dtype.ToLowerInvariant() switch
    {
        "float32" or "fp32" => torch.ScalarType.Float32,
        "bfloat16" or "bf16" => torch.ScalarType.BFloat16,
        "float16" or "fp16" => torch.ScalarType.Float16,
        _ => throw new ContinualMoEException($"text.dtype must be float32, bfloat16 or float16, got '{Dtype}'"),
    };
}

/// <summary>
/// Which datasets are text task streams, where their tasks come from, and which language model a text run uses.
/// </summary>
public static class TextStreams
{
    /// <summary>Dataset names of file-based text streams start with this (e.g. <c>text:trace:/data/TRACE</c>); the
    /// rest is the spec that <c>TextTaskCatalog.Load</c> reads.</summary>
    public const string FilePrefix = "text:";

    public static bool IsText(string dataset) =>
        string.Equals(dataset, GeneratedTextBenchmark.DatasetName, StringComparison.OrdinalIgnoreCase) ||
        dataset.StartsWith(FilePrefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>The run's text tasks: the generated benchmark (a fixed dataset; <c>tasks</c> and the generated_* sizes
    /// set its size), or the first <c>tasks</c> tasks of a file-based stream.</summary>
    public static IReadOnlyList<TextTaskData> Load(RunConfig config)
    {
        if (string.Equals(config.Dataset, GeneratedTextBenchmark.DatasetName, StringComparison.OrdinalIgnoreCase))
            return GeneratedTextBenchmark.Create(new GeneratedTextOptions
            {
                Seed = DefaultBackbone.DataSeed,
                Tasks = config.Tasks,
                TrainPerClass = config.GeneratedTrainPerClass,
                TestPerClass = config.GeneratedTestPerClass,
            });
        return Take(TextTaskCatalog.Load(config.Dataset[FilePrefix.Length..]), config);
    }

    /// <summary>The first <c>tasks</c> tasks of a stream; fewer is an error naming both counts.</summary>
    public static IReadOnlyList<TextTaskData> Take(IReadOnlyList<TextTaskData> tasks, RunConfig config) =>
        tasks.Count >= config.Tasks ? tasks.Take(config.Tasks).ToList()
            : throw new ContinualMoEException($"dataset '{config.Dataset}' has {tasks.Count} tasks but the run asks for tasks={config.Tasks}");

    /// <summary>
    /// The Hugging Face model folder of a text run: <c>backbone</c> when it is a folder. A run that names no language
    /// model (backbone left at the image default) gets the default small language model (<see cref="DefaultLanguageModel"/>,
    /// built and cached on first use).
    /// </summary>
    public static string LanguageModelFolder(RunConfig config, IProgress<LanguageModelBuildProgress>? progress = null)
    {
        EnsureLanguageModelNamed(config);
        return UsesDefaultLanguageModel(config) ? DefaultLanguageModel.EnsureFolder(progress) : config.Backbone;
    }

    /// <summary>A text run that names no language model (backbone left at the image default) uses the default one.</summary>
    public static bool UsesDefaultLanguageModel(RunConfig config) => config.Backbone == RunConfig.DefaultBackbone;

    /// <summary>Checks, without loading or building anything, that the run names a model folder or the default.</summary>
    public static void EnsureLanguageModelNamed(RunConfig config)
    {
        if (!UsesDefaultLanguageModel(config) && !Directory.Exists(config.Backbone))
            throw ContinualMoEException.ForFile(config.Backbone, "not found: a text run's backbone is a Hugging Face model folder (config.json, safetensors, tokenizer)");
    }
}
