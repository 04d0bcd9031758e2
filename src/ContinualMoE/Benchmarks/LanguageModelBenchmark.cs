using System.Diagnostics;
using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
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

        using var experts = LowRankExperts.Uniform(LowRankSites.Select(model, ["qv"], null, "bench"), 1, LoraRank, LoraAlpha);
        experts.Activate(0);
        experts.to(dtype);
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
