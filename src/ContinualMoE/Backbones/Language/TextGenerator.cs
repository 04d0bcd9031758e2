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

/// <summary>
/// Autoregressive decoding with a key/value cache: the prompts are run once, then one token per row and step. A batch
/// of prompts of different lengths is left-padded with an attention mask, so every row continues from its own last
/// token with its own position ids, and each row equals generating its prompt alone.
/// </summary>
public static class TextGenerator
{
    /// <summary>Continues <paramref name="promptIds"/>; returns only the new ids (the stop token included when hit).</summary>
    public static long[] Generate(DecoderLanguageModel model, IReadOnlyList<long> promptIds, GenerationSettings settings, LmForwardOptions? options = null) =>
        Generate(model, [promptIds], settings, options)[0];

    /// <summary>
    /// Continues every prompt in one batch (left-padded when lengths differ) and returns each row's new ids, the stop token
    /// included when hit. A row stops at a stop token or after <see cref="GenerationSettings.MaxNewTokens"/> (fewer when
    /// the longest prompt reaches the model's positions); the batch stops when every row has. Sampling draws each row
    /// from its own generator seeded with <see cref="GenerationSettings.Seed"/>, so row b equals
    /// <c>Generate(model, prompts[b], settings)</c> with sampling as with greedy decoding.
    /// </summary>
    public static long[][] Generate(DecoderLanguageModel model, IReadOnlyList<IReadOnlyList<long>> prompts, GenerationSettings settings, LmForwardOptions? options = null)
    {
        if (prompts.Count == 0 || prompts.Any(p => p.Count == 0)) throw new ContinualMoEException("generation needs at least one prompt token in every row");
        if (settings.MaxNewTokens < 0 || settings.Temperature < 0 || settings.TopK < 0 || settings.TopP is <= 0 or > 1)
            throw new ContinualMoEException("generation settings: max new tokens, temperature and top-k must be >= 0 and top-p in (0, 1]");
        var rows = prompts.Count;
        var longest = prompts.Max(p => p.Count);
        var maxNew = (int)Math.Min(settings.MaxNewTokens, model.Config.MaxPositions - longest);
        if (maxNew < 0) throw new ContinualMoEException($"prompt of {longest} tokens exceeds the model's {model.Config.MaxPositions} positions");
        var (ids, real) = LeftPadded(prompts, longest, maxNew);
        var generated = Enumerable.Range(0, rows).Select(_ => new List<long>()).ToArray();
        var finished = new bool[rows];
        var generators = settings.Temperature > 0 ? Enumerable.Range(0, rows).Select(_ => new Generator((ulong)settings.Seed)).ToArray() : [];
        try
        {
            using var cache = model.NewCache();
            using var noGrad = no_grad();
            // The adapters stay as they are for the whole generation: let them prepare their factors once, not per token.
            using var heldAdapters = options?.Adapters?.BeginInference();
            using var outer = NewDisposeScope();
            var mask = real is null ? null : tensor(real, [rows, longest + maxNew]);
            var next = tensor(ids, [rows, longest]);
            // One step: the new ids of every row through the model, one token picked per row; false once every row has stopped.
            bool Step()
            {
                using var scope = NewDisposeScope();
                using var output = model.Forward(next, new LmForwardOptions
                {
                    Adapters = options?.Adapters, Prefixes = options?.Prefixes, Cache = cache,
                    AttentionMask = mask?.narrow(1, 0, cache.Length + next.shape[1]), FirstLogitPosition = next.shape[1] - 1,
                });
                var last = output.Logits!.select(1, -1);                                                // [B, V]
                var picked = settings.Temperature == 0
                    ? last.argmax(-1).data<long>().ToArray()
                    : Enumerable.Range(0, rows).Select(r => finished[r] ? 0 : Pick(last[r], settings, generators[r])).ToArray();
                for (var r = 0; r < rows; r++)
                {
                    if (finished[r]) continue;
                    generated[r].Add(picked[r]);
                    if (settings.StopTokenIds.Contains(picked[r])) finished[r] = true;
                }
                if (finished.All(f => f)) return false;
                next = tensor(picked, [rows, 1]).MoveToOuterDisposeScope();
                return true;
            }
            void OneTokenSteps()
            {
                for (var step = 1; step < maxNew && Step(); step++) { }
            }

            if (maxNew > 0 && Step())
            {
                // The prompts' step may be large; the one-token steps of a small model all run on one thread, held for
                // the whole loop rather than switched at every step (DecoderLanguageModel.OneThreadLimit).
                if (model.SmallForInference(rows)) ComputeDevice.OnOneThread(OneTokenSteps);
                else OneTokenSteps();
            }
        }
        finally
        {
            foreach (var g in generators) g.Dispose();
        }
        return generated.Select(g => g.ToArray()).ToArray();
    }

    /// <summary>
    /// Greedy continuation of a batch of prompts of equal length [B, P] (int64), exactly <paramref name="newTokens"/>
    /// tokens each (no stop tokens): the new ids [B, newTokens]. What <c>bench lm</c> measures.
    /// </summary>
    public static Tensor GenerateGreedy(DecoderLanguageModel model, Tensor promptIds, int newTokens, LmForwardOptions? options = null)
    {
        if (promptIds.dim() != 2 || promptIds.dtype != ScalarType.Int64 || promptIds.shape[1] == 0)
            throw new ContinualMoEException($"batched generation needs int64 prompt ids [batch, tokens] with at least one token, got {promptIds.dtype} [{string.Join(", ", promptIds.shape)}]");
        if (newTokens < 0 || promptIds.shape[1] + newTokens > model.Config.MaxPositions)
            throw new ContinualMoEException($"{promptIds.shape[1]} prompt + {newTokens} new tokens exceed the model's {model.Config.MaxPositions} positions");
        var width = promptIds.shape[1];
        var flat = promptIds.cpu().contiguous().data<long>().ToArray();
        var prompts = Enumerable.Range(0, (int)promptIds.shape[0]).Select(r => (IReadOnlyList<long>)flat[(int)(r * width)..(int)((r + 1) * width)]).ToArray();
        var generated = Generate(model, prompts, new GenerationSettings { MaxNewTokens = newTokens }, options);
        return tensor(generated.SelectMany(g => g).ToArray(), [prompts.Length, newTokens]);
    }

    /// <summary>Prompts right-aligned in [B, longest] (padding id 0, never attended to) and, when lengths differ, which of
    /// the [B, longest + extra] positions are real (the <paramref name="extra"/> positions after the prompts all are).</summary>
    internal static (long[] Ids, bool[]? Real) LeftPadded(IReadOnlyList<IReadOnlyList<long>> prompts, int longest, int extra)
    {
        var ids = new long[prompts.Count * longest];
        var padded = prompts.Any(p => p.Count != longest);
        var width = longest + extra;
        var real = padded ? new bool[prompts.Count * width] : null;
        for (var r = 0; r < prompts.Count; r++)
        {
            var offset = longest - prompts[r].Count;
            for (var i = 0; i < prompts[r].Count; i++) ids[r * longest + offset + i] = prompts[r][i];
            if (real is not null) Array.Fill(real, true, r * width + offset, width - offset);
        }
        return (ids, real);
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
