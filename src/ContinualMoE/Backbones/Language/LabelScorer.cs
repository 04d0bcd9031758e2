using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// Scores label options as continuations of prompts: the sum of log p(option token | prompt, earlier option tokens).
/// The prompts run once, as one left-padded batch with a key/value cache; the first token of every option is scored
/// from the prompt's last position, and the remaining tokens of all options are packed after the cached prompt in one
/// more forward pass, each option attending to the prompt and its own earlier tokens only, with the position ids it
/// would have alone. Rows stay the prompts (no row per option), so per-sample adapter weights keep their meaning.
/// </summary>
public static class LabelScorer
{
    /// <summary>Upper bound on one pass's logits (rows x packed tokens x vocabulary floats, 256 MB): options beyond it go
    /// into further passes from the same cached prompt.</summary>
    private const long LogitBudget = 1L << 26;

    /// <summary>Log-likelihood of each option (sum over its tokens); divide by the option's length for a per-token score.</summary>
    public static double[] Score(DecoderLanguageModel model, IReadOnlyList<long> promptIds, IReadOnlyList<IReadOnlyList<long>> options, LmForwardOptions? forwardOptions = null)
    {
        var scores = Score(model, [promptIds], options, forwardOptions);
        return Enumerable.Range(0, options.Count).Select(c => scores[0, c]).ToArray();
    }

    /// <summary>scores[p, c] = log p(options[c] | prompts[p]) for every prompt and option.</summary>
    public static double[,] Score(DecoderLanguageModel model, IReadOnlyList<IReadOnlyList<long>> prompts, IReadOnlyList<IReadOnlyList<long>> options,
        LmForwardOptions? forwardOptions = null)
    {
        if (prompts.Count == 0 || prompts.Any(p => p.Count == 0)) throw new ContinualMoEException("scoring needs at least one prompt token in every row (e.g. the BOS token)");
        if (options.Count == 0 || options.Any(o => o.Count == 0)) throw new ContinualMoEException("every label option needs at least one token");
        var rows = prompts.Count;
        var longest = prompts.Max(p => p.Count);
        var longestOption = options.Max(o => o.Count);
        if (longest + longestOption - 1 > model.Config.MaxPositions)
            throw new ContinualMoEException($"a prompt of {longest} tokens and an option of {longestOption} exceed the model's {model.Config.MaxPositions} positions");
        var (ids, real) = TextGenerator.LeftPadded(prompts, longest, 0);
        var scores = new double[rows, options.Count];
        using var noGrad = no_grad();
        using var heldAdapters = forwardOptions?.Adapters?.BeginInference();
        using var scope = NewDisposeScope();
        using var cache = model.NewCache();
        var promptMask = real is null ? null : tensor(real, [rows, longest]);
        using (var output = model.Forward(tensor(ids, [rows, longest]), new LmForwardOptions
               {
                   Adapters = forwardOptions?.Adapters, Prefixes = forwardOptions?.Prefixes, Cache = cache,
                   AttentionMask = promptMask, FirstLogitPosition = longest - 1,
               }))
        {
            var firstTokens = tensor(options.Select(o => o[0]).ToArray()).unsqueeze(0).expand(rows, -1);
            var first = output.Logits!.select(1, -1).log_softmax(-1).gather(1, firstTokens).to(ScalarType.Float64).data<double>().ToArray();
            for (var r = 0; r < rows; r++)
                for (var c = 0; c < options.Count; c++) scores[r, c] = first[r * options.Count + c];
        }

        var promptLengths = prompts.Select(p => (long)p.Count).ToArray();
        foreach (var group in PackedGroups(options, rows * (long)model.Config.VocabSize))
            AddLaterTokens(model, cache, promptMask, promptLengths, options, group, scores, forwardOptions);
        return scores;
    }

    /// <summary>Options with more than one token, grouped so that each pass's logits stay within the budget.</summary>
    private static IEnumerable<List<int>> PackedGroups(IReadOnlyList<IReadOnlyList<long>> options, long floatsPerToken)
    {
        var group = new List<int>();
        long tokens = 0;
        for (var c = 0; c < options.Count; c++)
        {
            var fed = options[c].Count - 1;
            if (fed == 0) continue;
            if (group.Count > 0 && (tokens + fed) * floatsPerToken > LogitBudget)
            {
                yield return group;
                group = [];
                tokens = 0;
            }
            group.Add(c);
            tokens += fed;
        }
        if (group.Count > 0) yield return group;
    }

    /// <summary>
    /// Feeds tokens 0 .. L-2 of each option of the group after the cached prompt (a fork of it) and adds the log
    /// probabilities of tokens 1 .. L-1: option token i sits at position prompt length + i and attends to the prompt
    /// and to its own option's tokens up to i.
    /// </summary>
    private static void AddLaterTokens(DecoderLanguageModel model, KeyValueCache cache, Tensor? promptMask, long[] promptLengths,
        IReadOnlyList<IReadOnlyList<long>> options, List<int> group, double[,] scores, LmForwardOptions? forwardOptions)
    {
        using var scope = NewDisposeScope();
        var inputs = new List<long>();
        var targets = new List<long>();
        var offsets = new List<long>();
        var owner = new List<int>();
        foreach (var c in group)
            for (var i = 0; i + 1 < options[c].Count; i++)
            {
                inputs.Add(options[c][i]);
                targets.Add(options[c][i + 1]);
                offsets.Add(i);
                owner.Add(c);
            }
        int rows = promptLengths.Length, tokens = inputs.Count;
        var allowed = new bool[tokens * tokens];
        for (var t = 0; t < tokens; t++)
            for (var s = t - (int)offsets[t]; s <= t; s++) allowed[t * tokens + s] = true;
        var ids = tensor(inputs.ToArray()).unsqueeze(0).repeat(rows, 1);
        var positions = tensor(promptLengths).unsqueeze(1).add(tensor(offsets.ToArray()).unsqueeze(0));      // [B, T]
        var mask = promptMask is null ? null : torch.cat([promptMask, torch.ones(rows, tokens, dtype: ScalarType.Bool)], dim: 1);
        using var fork = cache.Fork();
        using var output = model.Forward(ids, new LmForwardOptions
        {
            Adapters = forwardOptions?.Adapters, Prefixes = forwardOptions?.Prefixes, Cache = fork, AttentionMask = mask,
            PositionIds = positions, NewTokenAttention = tensor(allowed, [tokens, tokens]),
        });
        var picked = output.Logits!.log_softmax(-1).gather(2, tensor(targets.ToArray()).unsqueeze(0).repeat(rows, 1).unsqueeze(-1))
            .squeeze(-1).to(ScalarType.Float64).data<double>().ToArray();                                // [B, T]
        for (var r = 0; r < rows; r++)
            for (var t = 0; t < tokens; t++) scores[r, owner[t]] += picked[r * tokens + t];
    }
}
