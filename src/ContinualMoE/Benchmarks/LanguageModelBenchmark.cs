using System.Diagnostics;
using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using ContinualMoE.LowRank;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Benchmarks;

/// <summary>Which parameters a training step updates: LoRA on the query and value projections (rank 8, alpha 16,
/// Hu et al. 2021's default sites) or every weight of the model.</summary>
public enum LanguageModelTrainingMode { LoraQv, Full }

/// <summary>Figures of one language-model benchmark (one model, batch and precision), all measured in one process.</summary>
public sealed record LanguageModelBenchmarkResult(
    string Model, string Precision, string Training, int Threads, int BatchSize, int SequenceLength, int NewTokens,
    double TrainTokensPerSecond, double GenerateTokensPerSecond);

/// <summary>
/// Measures a decoder language model's training step (forward, next-token loss, backward, AdamW step) and greedy
/// generation with a key/value cache, in tokens/s. Inputs are seeded random ids, so the figures depend only on the
/// model's geometry, the batch and the precision; tools/bench_lm_torch.py measures the same in PyTorch.
/// </summary>
public static class LanguageModelBenchmark
{
    public const int LoraRank = 8;
    public const double LoraAlpha = 16;

    public static LanguageModelBenchmarkResult Run(string folder, ScalarType dtype, LanguageModelTrainingMode mode, int batchSize,
        int sequenceLength, int promptTokens, int newTokens, double seconds, int threads = 0)
    {
        if (threads > 0) set_num_threads(threads);
        using var model = LanguageModelFolder.Load(folder, new LanguageModelLoadOptions { DType = dtype }).Model;
        var vocabulary = model.Config.VocabSize;
        if (sequenceLength > model.Config.MaxPositions || promptTokens + newTokens > model.Config.MaxPositions)
            throw new ContinualMoEException($"{folder}: the benchmark's {Math.Max(sequenceLength, promptTokens + newTokens)} positions exceed the model's {model.Config.MaxPositions}");
        var generator = new Generator(0);
        using var ids = randint(0, vocabulary, [batchSize, sequenceLength + 1], dtype: ScalarType.Int64, generator: generator);
        using var prompts = randint(0, vocabulary, [batchSize, promptTokens], dtype: ScalarType.Int64, generator: generator);

        // float32 experts whatever the model's precision, as in a run: the model casts at its boundary (PrecisionBoundary).
        using var experts = LowRankExperts.Uniform(LowRankSites.Select(model, ["qv"], null, "bench"), 1, LoraRank, LoraAlpha);
        experts.Activate(0);
        IReadOnlyList<TorchSharp.Modules.Parameter> trainable;
        ILinearAdapterProvider? adapters = null;
        if (mode == LanguageModelTrainingMode.Full)
        {
            model.SetFrozen(false);
            trainable = model.parameters().ToList();
        }
        else
        {
            trainable = experts.TrainableParameters();
            adapters = experts;
        }
        var settings = new OptimizerSettings { Kind = OptimizerKind.AdamW, LearningRate = 1e-4, WeightDecay = 0.01 };
        using var optimizer = Optimizers.Create([new ParameterGroup("bench", trainable)], settings);
        var inputs = ids.narrow(1, 0, sequenceLength);
        var targets = ids.narrow(1, 1, sequenceLength).reshape(-1);
        var train = PerSecond(seconds, () =>
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            using var output = model.Forward(inputs, new LmForwardOptions { Adapters = adapters });
            var loss = nn.functional.cross_entropy(output.Logits!.reshape(-1, vocabulary), targets);
            loss.backward();
            optimizer.step();
        }) * batchSize * sequenceLength;

        model.SetFrozen(true);
        var generate = PerSecond(seconds, () =>
        {
            var generated = TextGenerator.GenerateGreedy(model, prompts, newTokens, new LmForwardOptions { Adapters = adapters });
            generated.Dispose();
        }) * batchSize * newTokens;
        return new LanguageModelBenchmarkResult(model.Name, dtype == ScalarType.BFloat16 ? "bf16" : dtype == ScalarType.Float16 ? "fp16" : "fp32",
            mode == LanguageModelTrainingMode.Full ? "full" : $"lora q,v r{LoraRank}", get_num_threads(), batchSize, sequenceLength, newTokens,
            train, generate);
    }

    /// <summary>
    /// Writes a random-weight LLaMA of the same size as <paramref name="like"/> into <paramref name="folder"/> (Hugging
    /// Face layout), so that <c>bench lm</c> compares the LLaMA family with GPT-2 at equal width, depth, heads, vocabulary
    /// and positions: grouped-query attention with half as many key/value heads, a SwiGLU of 2/3 the MLP width (LLaMA's
    /// convention, about GPT-2's MLP parameter count), untied head. Speed does not depend on the weights' values.
    /// </summary>
    public static string WriteLlamaLike(DecoderConfig like, string folder)
    {
        Directory.CreateDirectory(folder);
        var keyValueHeads = like.Heads % 2 == 0 ? like.Heads / 2 : like.Heads;
        var mlp = Math.Max(8, (2 * like.MlpHidden / 3 + 7) / 8 * 8);
        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray("LlamaForCausalLM"), ["model_type"] = "llama",
            ["vocab_size"] = like.VocabSize, ["hidden_size"] = like.Width, ["intermediate_size"] = mlp, ["num_hidden_layers"] = like.Depth,
            ["num_attention_heads"] = like.Heads, ["num_key_value_heads"] = keyValueHeads, ["max_position_embeddings"] = like.MaxPositions,
            ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0, ["hidden_act"] = "silu", ["tie_word_embeddings"] = false, ["torch_dtype"] = "float32",
        };
        var configPath = Path.Combine(folder, LanguageModelFolder.ConfigFileName);
        File.WriteAllText(configPath, config.ToJsonString());
        using var model = new LlamaLanguageModel(DecoderConfig.Read(configPath));
        StateDictLoader.Save(model, Path.Combine(folder, SafeTensorsCheckpoint.SingleFileName));
        return folder;
    }

    /// <summary>Calls per second of <paramref name="step"/> after two warm-up calls, over at least <paramref name="seconds"/>.</summary>
    private static double PerSecond(double seconds, Action step)
    {
        step();
        step();
        var clock = Stopwatch.StartNew();
        var calls = 0;
        do { step(); calls++; } while (clock.Elapsed.TotalSeconds < seconds);
        return calls / clock.Elapsed.TotalSeconds;
    }
}
