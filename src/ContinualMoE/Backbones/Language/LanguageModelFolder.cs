using ContinualMoE.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>How <see cref="LanguageModelFolder.Load"/> builds the model.</summary>
public sealed class LanguageModelLoadOptions
{
    /// <summary>Dtype of the parameters and of the computation: float32 (default), bfloat16 or float16. Weights stored
    /// in another dtype are converted tensor by tensor while streaming.</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;

    /// <summary>Point parameters stored in the computing dtype at a copy-on-write memory map of the safetensors files
    /// instead of reading them (<see cref="SafeTensorsFile.ReadInto"/>): the weights are then the operating system's
    /// file cache, read on first use, shared between processes that load the same folder, and never anonymous memory
    /// of this process. Tensors stored in another dtype are converted while streaming either way.</summary>
    public bool MemoryMap { get; init; }

    /// <summary>Bytes the model may use; null asks the operating system (<see cref="AvailableMemory"/>).</summary>
    public long? AvailableMemoryBytes { get; init; }
}

/// <summary>A loaded model with what the loader did.</summary>
public sealed record LoadedLanguageModel(DecoderLanguageModel Model, LoadReport Report, string Description);

/// <summary>
/// Loads a Hugging Face model folder (config.json with safetensors weights, one file or shards with an index) into
/// <see cref="Gpt2LanguageModel"/> or <see cref="LlamaLanguageModel"/>. Everything that can be checked from config.json
/// and the safetensors headers is checked before the model is built: architecture, names and shapes, and whether the
/// model fits in memory.
/// </summary>
public static class LanguageModelFolder
{
    public const string ConfigFileName = "config.json";

    /// <summary>Slack for activations, the tokenizer and the runtime beside the weights.</summary>
    private const long WorkingMemoryBytes = 256L << 20;

    public static LoadedLanguageModel Load(string folder, LanguageModelLoadOptions? options = null)
    {
        options ??= new LanguageModelLoadOptions();
        if (options.DType is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new ContinualMoEException($"language model dtype {options.DType} is not supported (float32, bfloat16, float16)");
        if (!Directory.Exists(folder)) throw ContinualMoEException.ForFile(folder, "model folder not found");
        var configPath = Path.Combine(folder, ConfigFileName);
        var config = DecoderConfig.Read(configPath);
        var checkpoint = SafeTensorsCheckpoint.Open(folder);

        CheckMemory(folder, checkpoint, options);
        CheckAgainstConfig(configPath, config, checkpoint);

        DecoderLanguageModel model = config.Family == DecoderFamily.Gpt2
            ? new Gpt2LanguageModel(config, options.DType)
            : new LlamaLanguageModel(config, options.DType);
        try
        {
            LoadReport report;
            try
            {
                report = StateDictLoader.Load(model, checkpoint, model.ParameterNameFor, new LoadOptions { MemoryMap = options.MemoryMap });
            }
            catch (ContinualMoEException e) when (!e.Message.StartsWith(folder, StringComparison.Ordinal))
            {
                throw ContinualMoEException.ForFile(configPath, $"contradicts the weights: {e.Message}", e);
            }
            if (report.Missing.Count > 0)
                throw ContinualMoEException.ForFile(folder,
                    $"the weights lack {report.Missing.Count} tensors that config.json's {config.ModelType} needs, e.g. {string.Join(", ", report.Missing.Take(3))}");
            var description = $"{config.ModelType}, {config.Depth} blocks, width {config.Width}, {config.Heads} heads" +
                              (config.KeyValueHeads != config.Heads ? $" ({config.KeyValueHeads} key/value)" : "") +
                              $", vocabulary {config.VocabSize}; {checkpoint.Description}, {checkpoint.DescribeDTypes()}; computing in {options.DType}";
            model.Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
            return new LoadedLanguageModel(model, report, description);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Refuses a model that does not fit before allocating any of it.</summary>
    public static void CheckMemory(string folder, SafeTensorsCheckpoint checkpoint, LanguageModelLoadOptions options)
    {
        var needed = checkpoint.BytesAs(options.DType) + WorkingMemoryBytes;
        var (available, source) = options.AvailableMemoryBytes is long given ? (given, "the given limit") : AvailableMemory.Query();
        if (needed > available)
            throw ContinualMoEException.ForFile(folder,
                $"model needs about {AvailableMemory.Format(needed)} in {options.DType} but only {AvailableMemory.Format(available)} is available ({source}); " +
                (options.DType == ScalarType.Float32 ? "try bfloat16 or free memory" : "free memory or use a smaller model"));
    }

    /// <summary>The embedding and the first block's widths must agree with config.json: a clear message instead of a list of mismatches.</summary>
    private static void CheckAgainstConfig(string configPath, DecoderConfig config, SafeTensorsCheckpoint checkpoint)
    {
        var shapes = checkpoint.Tensors.ToDictionary(t => t.Entry.Name, t => t.Entry.Shape, StringComparer.Ordinal);
        var embeddingName = config.Family == DecoderFamily.Gpt2
            ? (shapes.ContainsKey("transformer.wte.weight") ? "transformer.wte.weight" : "wte.weight")
            : "model.embed_tokens.weight";
        if (shapes.TryGetValue(embeddingName, out var embedding) && embedding.Length == 2 &&
            (embedding[0] != config.VocabSize || embedding[1] != config.Width))
            throw ContinualMoEException.ForFile(configPath,
                $"says vocabulary {config.VocabSize} and width {config.Width} but {embeddingName} is [{string.Join(", ", embedding)}]");
        var blockPrefix = config.Family == DecoderFamily.Gpt2 ? "h." : "model.layers.";
        var blocks = shapes.Keys
            .Select(n => n.StartsWith("transformer.", StringComparison.Ordinal) ? n["transformer.".Length..] : n)
            .Where(n => n.StartsWith(blockPrefix, StringComparison.Ordinal))
            .Select(n => int.TryParse(n[blockPrefix.Length..].Split('.')[0], out var i) ? i + 1 : 0)
            .DefaultIfEmpty(0).Max();
        if (blocks != 0 && blocks != config.Depth)
            throw ContinualMoEException.ForFile(configPath, $"says {config.Depth} blocks but the weights have {blocks}");
    }
}
