using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using ContinualMoE.Data.Text;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Experiments;

/// <summary>
/// Everything that determines a pretrained small GPT-2: the tokenizer's merges, the geometry, and the optimisation.
/// <see cref="Name"/> is the cache folder's name, so a changed recipe must get a new name (a version suffix).
/// </summary>
public sealed record LanguageModelRecipe
{
    public required string Name { get; init; }
    /// <summary>Byte-level BPE merges learned from the corpus; the vocabulary is 256 bytes + merges + end-of-text.</summary>
    public int Merges { get; init; } = 767;
    public int Width { get; init; } = 96;
    public int Depth { get; init; } = 4;
    public int Heads { get; init; } = 4;
    /// <summary>Training window and the model's n_positions.</summary>
    public int Context { get; init; } = 64;
    public int BatchSize { get; init; } = 32;
    public int Epochs { get; init; } = 1;
    /// <summary>Use only the first this many training windows of the shuffled corpus per epoch (null: all).</summary>
    public int? MaxBatchesPerEpoch { get; init; }
    public double LearningRate { get; init; } = 2e-3;
    public double FinalLearningRate { get; init; } = 2e-4;
    public double WeightDecay { get; init; } = 0.1;
    public int Seed { get; init; }
}

/// <summary>Progress of building a language model: the stage and, while training, step, loss and tokens/s.</summary>
public sealed record LanguageModelBuildProgress(string Stage, string Message, long Step = 0, long Steps = 0, double Loss = double.NaN,
    double TokensPerSecond = 0);

/// <summary>What a build measured, stored as pretraining.json beside the weights (with the files' SHA-256, which is how
/// a damaged cache is recognised).</summary>
public sealed record LanguageModelBuildReport(
    string Recipe, string Corpus, int VocabularySize, long Parameters, long TrainTokens, long HeldOutTokens,
    long Steps, double FinalTrainLoss, double HeldOutLoss, double HeldOutPerplexity, double Seconds, double TrainTokensPerSecond,
    IReadOnlyDictionary<string, string> FileSha256)
{
    public const string FileName = "pretraining.json";
}

/// <summary>
/// Pretrains a GPT-2 from scratch on a text corpus with next-token cross-entropy and writes it as a Hugging Face model
/// folder (config.json, model.safetensors, vocab.json + merges.txt, tokenizer_config.json, generation_config.json) that
/// <see cref="LanguageModelFolder"/> and transformers load unchanged. Deterministic for a given recipe, corpus and
/// thread count: seeded initialisation, seeded window order, no dropout.
/// </summary>
public static class LanguageModelPretraining
{
    public static readonly IReadOnlyList<string> ModelFiles =
        ["config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json", "generation_config.json"];

    /// <summary>Builds the model into <paramref name="folder"/> (which must not exist yet; it is filled directly, so
    /// callers that need atomicity pass a temporary folder and rename it).</summary>
    public static LanguageModelBuildReport Build(LanguageModelRecipe recipe, TextCorpus corpus, string folder,
        IProgress<LanguageModelBuildProgress>? progress = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(folder);
        progress?.Report(new("tokenizer", $"learning {recipe.Merges} byte-level BPE merges from {corpus.Name}"));
        var bpe = ByteLevelBpeTrainer.Train(corpus.Train, recipe.Merges, cancellation);
        bpe.WriteGpt2Files(folder);
        WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer", ["model_max_length"] = recipe.Context, ["add_prefix_space"] = false,
            ["bos_token"] = bpe.EndOfText, ["eos_token"] = bpe.EndOfText, ["unk_token"] = bpe.EndOfText,
        });
        WriteJson(Path.Combine(folder, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"), ["model_type"] = "gpt2", ["vocab_size"] = bpe.Size,
            ["n_embd"] = recipe.Width, ["n_layer"] = recipe.Depth, ["n_head"] = recipe.Heads, ["n_positions"] = recipe.Context,
            ["n_ctx"] = recipe.Context, ["activation_function"] = "gelu_new", ["layer_norm_epsilon"] = 1e-5,
            ["resid_pdrop"] = 0.0, ["embd_pdrop"] = 0.0, ["attn_pdrop"] = 0.0, ["initializer_range"] = 0.02,
            ["bos_token_id"] = bpe.EndOfTextId, ["eos_token_id"] = bpe.EndOfTextId, ["tie_word_embeddings"] = true,
            ["torch_dtype"] = "float32",
        });
        WriteJson(Path.Combine(folder, "generation_config.json"), new JsonObject
        {
            ["bos_token_id"] = bpe.EndOfTextId, ["eos_token_id"] = bpe.EndOfTextId, ["max_length"] = recipe.Context,
        });

        progress?.Report(new("encoding", $"tokenizing {corpus.Train.Count + corpus.HeldOut.Count} documents"));
        var tokenizer = LanguageModelTokenizer.Load(folder);
        var train = Encode(tokenizer, corpus.Train, bpe.EndOfTextId);
        var heldOut = Encode(tokenizer, corpus.HeldOut, bpe.EndOfTextId);

        var config = DecoderConfig.Read(Path.Combine(folder, "config.json"));
        var (model, finalLoss, steps, tokensPerSecond) = Train(config, train, recipe, progress, cancellation);
        using (model)
        {
            progress?.Report(new("evaluating", $"held-out perplexity on {heldOut.Length:N0} tokens"));
            var heldOutLoss = MeanTokenLoss(model, heldOut, recipe.Context, recipe.BatchSize);
            progress?.Report(new("saving", $"writing {folder}"));
            SafeTensorsFile.Write(Path.Combine(folder, "model.safetensors"), model.state_dict(),
                new Dictionary<string, string> { ["format"] = "pt" });
            var report = new LanguageModelBuildReport(recipe.Name, corpus.Name, bpe.Size, model.parameters().Sum(p => p.numel()),
                train.Length, heldOut.Length, steps, finalLoss, heldOutLoss, Math.Exp(heldOutLoss), clock.Elapsed.TotalSeconds,
                tokensPerSecond, ModelFiles.ToDictionary(f => f, f => Sha256(Path.Combine(folder, f))));
            AtomicFile.WriteAllText(Path.Combine(folder, LanguageModelBuildReport.FileName),
                JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }) + "\n");
            return report;
        }
    }

    /// <summary>Next-token training on windows of Context + 1 tokens (stride Context) of the concatenated documents.</summary>
    public static (Gpt2LanguageModel Model, double FinalLoss, long Steps, double TokensPerSecond) Train(DecoderConfig config, long[] tokens,
        LanguageModelRecipe recipe, IProgress<LanguageModelBuildProgress>? progress = null, CancellationToken cancellation = default)
    {
        var windows = (int)((tokens.Length - 1) / recipe.Context);
        var batchesPerEpoch = windows / recipe.BatchSize;
        if (recipe.MaxBatchesPerEpoch is int most) batchesPerEpoch = Math.Min(batchesPerEpoch, most);
        if (batchesPerEpoch == 0)
            throw new ContinualMoEException($"the corpus has {tokens.Length} tokens: too few for one batch of {recipe.BatchSize} windows of {recipe.Context}");

        torch.random.manual_seed(recipe.Seed);
        var model = new Gpt2LanguageModel(config);
        InitialiseLikeGpt2(model, config);
        model.SetFrozen(false);
        model.train();
        var parameters = model.parameters().ToList();
        var settings = new OptimizerSettings
        {
            Kind = OptimizerKind.AdamW, LearningRate = recipe.LearningRate, WeightDecay = recipe.WeightDecay, Betas = (0.9, 0.95),
            Schedule = ScheduleKind.IterationCosine, FinalRate = recipe.FinalLearningRate, ClipGradNorm = 1.0,
        };
        var last = default(PretrainingLoopProgress);
        PretrainingLoop.Run(parameters, settings, recipe.Epochs, batchesPerEpoch,
            epoch => Batches(tokens, windows, batchesPerEpoch, recipe, epoch),
            batch =>
            {
                var inputs = batch.Ids.narrow(1, 0, recipe.Context);
                var targets = batch.Ids.narrow(1, 1, recipe.Context).reshape(-1);
                using var output = model.Forward(inputs);
                var logits = output.Logits!.reshape(-1, config.VocabSize);
                var loss = nn.functional.cross_entropy(logits, targets);
                return new PretrainingBatchResult(loss, targets.shape[0], logits.argmax(-1).eq(targets).sum().item<long>());
            },
            p =>
            {
                last = p;
                progress?.Report(new("training", $"epoch {p.Epoch + 1}/{p.Epochs}", p.Iteration, (long)p.Epochs * p.Batches, p.Loss, p.ItemsPerSecond));
            },
            cancellation);
        model.eval();
        model.SetFrozen(true);
        return (model, last.Loss, last.Iteration, last.ItemsPerSecond);
    }

    /// <summary>Mean next-token cross-entropy (nats) over windows of <paramref name="context"/> + 1 tokens; exp of it is the perplexity.</summary>
    public static double MeanTokenLoss(DecoderLanguageModel model, long[] tokens, int context, int batchSize)
    {
        using var noGrad = no_grad();
        double sum = 0;
        long count = 0;
        for (long start = 0; start + 1 < tokens.Length; start += (long)context * batchSize)
        {
            using var scope = NewDisposeScope();
            var rows = new List<long[]>();
            for (var s = start; s + 1 < tokens.Length && rows.Count < batchSize; s += context)
                rows.Add(tokens[(int)s..(int)Math.Min(tokens.Length, s + context + 1)]);
            // The last window may be shorter: evaluate it on its own so that no padding enters the mean.
            foreach (var group in rows.GroupBy(r => r.Length))
            {
                var ids = tensor(group.SelectMany(r => r).ToArray(), dtype: ScalarType.Int64).reshape(group.Count(), group.Key);
                var length = group.Key - 1;
                using var output = model.Forward(ids.narrow(1, 0, length));
                var loss = nn.functional.cross_entropy(output.Logits!.reshape(-1, model.Config.VocabSize), ids.narrow(1, 1, length).reshape(-1),
                    reduction: nn.Reduction.Sum);
                sum += loss.item<float>();
                count += group.Count() * length;
            }
        }
        return count == 0 ? double.NaN : sum / count;
    }

    /// <summary>Documents' ids, each followed by the end-of-text id (GPT-2's document separator).</summary>
    public static long[] Encode(LanguageModelTokenizer tokenizer, IEnumerable<string> documents, int endOfText)
    {
        var ids = new List<long>();
        foreach (var document in documents)
        {
            foreach (var id in tokenizer.Encode(document, addBos: false)) ids.Add(id);
            ids.Add(endOfText);
        }
        return ids.ToArray();
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private sealed record TokenBatch(Tensor Ids) : IDisposable
    {
        public void Dispose() => Ids.Dispose();
    }

    /// <summary>Windows in a seeded order per epoch (Fisher-Yates with System.Random, stable across .NET versions for a seed).</summary>
    private static IEnumerable<TokenBatch> Batches(long[] tokens, int windows, int batchesPerEpoch, LanguageModelRecipe recipe, int epoch)
    {
        var order = Enumerable.Range(0, windows).ToArray();
        var random = new Random(recipe.Seed * 7919 + epoch);
        for (var i = order.Length - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        var width = recipe.Context + 1;
        for (var b = 0; b < batchesPerEpoch; b++)
        {
            var ids = new long[recipe.BatchSize * width];
            for (var r = 0; r < recipe.BatchSize; r++)
                Array.Copy(tokens, (long)order[b * recipe.BatchSize + r] * recipe.Context, ids, (long)r * width, width);
            yield return new TokenBatch(tensor(ids, dtype: ScalarType.Int64).reshape(recipe.BatchSize, width));
        }
    }

    /// <summary>GPT-2's initialisation (Radford et al. 2019, sec. 2.3; transformers' GPT2PreTrainedModel._init_weights):
    /// weights and embeddings N(0, 0.02), residual output projections N(0, 0.02 / sqrt(2 x layers)), biases 0, norms 1.</summary>
    private static void InitialiseLikeGpt2(Gpt2LanguageModel model, DecoderConfig config)
    {
        using var noGrad = no_grad();
        var residualStd = 0.02 / Math.Sqrt(2.0 * config.Depth);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.EndsWith("wte.weight", StringComparison.Ordinal) || name.EndsWith("wpe.weight", StringComparison.Ordinal))
                nn.init.normal_(parameter, 0, 0.02);
            else if (name.EndsWith("c_proj.weight", StringComparison.Ordinal))
                nn.init.normal_(parameter, 0, residualStd);
        }
    }

    private static void WriteJson(string path, JsonObject value) =>
        AtomicFile.WriteAllText(path, value.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
