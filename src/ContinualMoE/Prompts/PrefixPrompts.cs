using ContinualMoE.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>
/// Prefix tuning as the prompt-based continual-learning code bases do it (DualPrompt, CODA-Prompt, Deep L2P++, OVOR):
/// per block, prefix keys and values of the model width D, [B|1, L, D], split into heads and prepended to the block's
/// projected keys and values (they do not pass through the frozen qkv projection). The method fills one
/// <see cref="PrefixPrompts"/> per forward pass; the backbone asks for each block's prefix.
/// Per-sample prefixes (B rows) are laid out [B, L, H, d] -> [B, H, L, d] by a permute, never by a reshape across
/// samples or heads.
/// </summary>
public sealed class PrefixPrompts(int heads) : IAttentionPrefixProvider
{
    private readonly Dictionary<int, (Tensor Keys, Tensor Values)> prefixes = [];

    public IReadOnlyCollection<int> Blocks => prefixes.Keys;

    /// <summary>Adds keys and values [B|1, L, D] to a block; a second prefix for the same block is concatenated after
    /// the first along the prefix length (DualPrompt's E- and G-prompt in one block).</summary>
    public PrefixPrompts Add(int block, Tensor keys, Tensor values)
    {
        if (keys.dim() != 3 || values.dim() != 3) throw new ArgumentException("prefix keys and values must be [B|1, L, D]");
        if (prefixes.TryGetValue(block, out var existing))
        {
            var batch = Math.Max(existing.Keys.shape[0], keys.shape[0]);
            prefixes[block] = (cat([Expand(existing.Keys, batch), Expand(keys, batch)], 1), cat([Expand(existing.Values, batch), Expand(values, batch)], 1));
        }
        else prefixes[block] = (keys, values);
        return this;
    }

    /// <summary>Adds one prompt [B|1, L, D] split as the code bases do: first L/2 rows keys, last L/2 values.</summary>
    public PrefixPrompts AddSplit(int block, Tensor prompt)
    {
        var (k, v) = Split(prompt);
        return Add(block, k, v);
    }

    public AttentionPrefix? ForBlock(int blockIndex, Tensor queries)
    {
        if (!prefixes.TryGetValue(blockIndex, out var p)) return null;
        return AttentionPrefix.FromKeysAndValues(ToHeads(p.Keys, heads), ToHeads(p.Values, heads));
    }

    /// <summary>[B|1, L, D] to per-head [B|1, H, L, D/H].</summary>
    public static Tensor ToHeads(Tensor x, int heads)
    {
        long b = x.shape[0], l = x.shape[1], d = x.shape[2];
        if (d % heads != 0) throw new ArgumentException($"prefix width {d} is not divisible by {heads} heads");
        return x.reshape(b, l, heads, d / heads).permute(0, 2, 1, 3);
    }

    /// <summary>A prompt [..., L, D] of even length L as (keys = rows 0..L/2-1, values = rows L/2..L-1).</summary>
    public static (Tensor Keys, Tensor Values) Split(Tensor prompt)
    {
        var length = prompt.shape[^2];
        if (length % 2 != 0) throw new ArgumentException($"a prefix prompt split into keys and values needs an even length, got {length}");
        var half = length / 2;
        return (prompt.narrow(-2, 0, half), prompt.narrow(-2, half, half));
    }

    private static Tensor Expand(Tensor t, long batch) => t.shape[0] == batch ? t : t.expand(batch, -1, -1);
}
