using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>How <see cref="TextGenerator.Generate"/> picks tokens. Temperature 0 is greedy decoding.</summary>
public sealed record GenerationSettings
{
    public int MaxNewTokens { get; init; } = 32;
    /// <summary>0: greedy (argmax). Above 0: sample from softmax(logits / temperature).</summary>
    public double Temperature { get; init; }
    /// <summary>Sample only among the k most likely tokens; 0: all.</summary>
    public int TopK { get; init; }
    /// <summary>Sample only from the smallest set of tokens whose probability reaches p (nucleus sampling); 1: all.</summary>
    public double TopP { get; init; } = 1.0;
    public long Seed { get; init; } = 0;
    /// <summary>Generation stops after any of these ids (usually the config's eos_token_id).</summary>
    public IReadOnlyCollection<long> StopTokenIds { get; init; } = [];
}

/// <summary>Autoregressive decoding with a key/value cache: the prompt is run once, then one token per step.</summary>
public static class TextGenerator
{
    /// <summary>Continues <paramref name="promptIds"/>; returns only the new ids (the stop token included when hit).</summary>
    public static long[] Generate(DecoderLanguageModel model, IReadOnlyList<long> promptIds, GenerationSettings settings, LmForwardOptions? options = null)
    {
        if (promptIds.Count == 0) throw new ContinualMoEException("generation needs at least one prompt token");
        if (settings.MaxNewTokens < 0 || settings.Temperature < 0 || settings.TopK < 0 || settings.TopP is <= 0 or > 1)
            throw new ContinualMoEException("generation settings: max new tokens, temperature and top-k must be >= 0 and top-p in (0, 1]");
        var maxNew = (int)Math.Min(settings.MaxNewTokens, model.Config.MaxPositions - promptIds.Count);
        if (maxNew < 0) throw new ContinualMoEException($"prompt of {promptIds.Count} tokens exceeds the model's {model.Config.MaxPositions} positions");
        using var cache = model.NewCache();
        using var generator = new Generator((ulong)settings.Seed);
        using var noGrad = no_grad();
        var generated = new List<long>();
        var next = tensor(promptIds.ToArray(), dtype: ScalarType.Int64).unsqueeze(0);
        for (var step = 0; step < maxNew; step++)
        {
            using var scope = NewDisposeScope();
            using var output = model.Forward(next, new LmForwardOptions
            {
                Adapters = options?.Adapters, Prefixes = options?.Prefixes, Cache = cache, FirstLogitPosition = next.shape[1] - 1,
            });
            var last = output.Logits!.select(1, -1).squeeze(0);                                     // [V]
            var id = Pick(last, settings, generator);
            generated.Add(id);
            if (settings.StopTokenIds.Contains(id)) break;
            next = tensor(new[] { id }, dtype: ScalarType.Int64).unsqueeze(0).MoveToOuterDisposeScope();
        }
        return generated.ToArray();
    }

    /// <summary>
    /// Greedy continuation of a batch of prompts of equal length [B, P] (int64), <paramref name="newTokens"/> tokens each,
    /// with one key/value cache for the batch: returns the new ids [B, newTokens]. Row b equals
    /// <see cref="Generate"/> on prompt b alone (without stop tokens). Prompts of different lengths would need left
    /// padding with an attention mask, which the models do not take yet.
    /// </summary>
    public static Tensor GenerateGreedy(DecoderLanguageModel model, Tensor promptIds, int newTokens, LmForwardOptions? options = null)
    {
        if (promptIds.dim() != 2 || promptIds.dtype != ScalarType.Int64 || promptIds.shape[1] == 0)
            throw new ContinualMoEException($"batched generation needs int64 prompt ids [batch, tokens] with at least one token, got {promptIds.dtype} [{string.Join(", ", promptIds.shape)}]");
        if (newTokens < 0 || promptIds.shape[1] + newTokens > model.Config.MaxPositions)
            throw new ContinualMoEException($"{promptIds.shape[1]} prompt + {newTokens} new tokens exceed the model's {model.Config.MaxPositions} positions");
        using var cache = model.NewCache();
        using var noGrad = no_grad();
        using var outer = NewDisposeScope();
        var columns = new List<Tensor>();
        var next = promptIds;
        for (var step = 0; step < newTokens; step++)
        {
            using var scope = NewDisposeScope();
            using var output = model.Forward(next, new LmForwardOptions
            {
                Adapters = options?.Adapters, Prefixes = options?.Prefixes, Cache = cache, FirstLogitPosition = next.shape[1] - 1,
            });
            next = output.Logits!.select(1, -1).argmax(-1, keepdim: true).MoveToOuterDisposeScope();   // [B, 1]
            columns.Add(next);
        }
        var result = columns.Count > 0 ? torch.cat(columns, 1) : torch.empty(promptIds.shape[0], 0, dtype: ScalarType.Int64);
        return result.MoveToOuterDisposeScope();
    }

    private static long Pick(Tensor logits, GenerationSettings settings, Generator generator)
    {
        if (settings.Temperature == 0) return logits.argmax().item<long>();
        var scaled = logits.div(Scalars.Of(settings.Temperature));
        if (settings.TopK > 0 && settings.TopK < scaled.shape[0])
        {
            var kth = scaled.topk(settings.TopK).values[-1];
            scaled = scaled.masked_fill(scaled.lt(kth), Scalars.NegativeInfinity);
        }
        if (settings.TopP < 1)
        {
            var (sorted, order) = scaled.sort(descending: true);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            // Drop a token when the tokens before it already reach p; the most likely token always stays.
            var drop = cumulative.sub(sorted.softmax(-1)).ge(Scalars.Of(settings.TopP));
            scaled = scaled.scatter(0, order, sorted.masked_fill(drop, Scalars.NegativeInfinity));
        }
        return torch.multinomial(scaled.softmax(-1), 1, generator: generator).item<long>();
    }
}

/// <summary>
/// Scores label options as continuations of a prompt: the sum of log p(option token | prompt, earlier option tokens),
/// all options in one right-padded batch (padding sits after each option, so causal attention keeps it out).
/// </summary>
public static class LabelScorer
{
    /// <summary>Log-likelihood of each option (sum over its tokens); divide by the option's length for a per-token score.</summary>
    public static double[] Score(DecoderLanguageModel model, IReadOnlyList<long> promptIds, IReadOnlyList<IReadOnlyList<long>> options, LmForwardOptions? forwardOptions = null)
    {
        if (promptIds.Count == 0) throw new ContinualMoEException("scoring needs at least one prompt token (e.g. the BOS token)");
        if (options.Count == 0 || options.Any(o => o.Count == 0)) throw new ContinualMoEException("every label option needs at least one token");
        var longest = options.Max(o => o.Count);
        var length = promptIds.Count + longest;
        var ids = new long[options.Count * length];
        for (var row = 0; row < options.Count; row++)
        {
            for (var i = 0; i < promptIds.Count; i++) ids[row * length + i] = promptIds[i];
            for (var i = 0; i < options[row].Count; i++) ids[row * length + promptIds.Count + i] = options[row][i];
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = tensor(ids, dtype: ScalarType.Int64).reshape(options.Count, length);
        // Position t predicts token t+1: option token i sits at prompt + i and is predicted at prompt + i - 1.
        var labelPositions = new LmForwardOptions
        {
            Adapters = forwardOptions?.Adapters, Prefixes = forwardOptions?.Prefixes, FirstLogitPosition = promptIds.Count - 1,
        };
        using var output = model.Forward(batch, labelPositions);
        var logProbs = output.Logits!.narrow(1, 0, longest).log_softmax(-1);                             // [N, longest, V]
        var targets = batch.narrow(1, promptIds.Count, longest).unsqueeze(-1);
        var tokenScores = logProbs.gather(-1, targets).squeeze(-1).to(ScalarType.Float64).data<double>().ToArray();
        var scores = new double[options.Count];
        for (var row = 0; row < options.Count; row++)
            for (var i = 0; i < options[row].Count; i++) scores[row] += tokenScores[row * longest + i];
        return scores;
    }
}
