using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// Keys and values of the positions a decoder has already seen, per block, as [B, Hkv, T, d] (before grouped-query
/// expansion, after rotary embedding), so that generation feeds only the new token each step.
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    private readonly (Tensor Keys, Tensor Values)?[] blocks;

    public KeyValueCache(int depth) => blocks = new (Tensor, Tensor)?[depth];

    /// <summary>Number of positions stored; the next position id.</summary>
    public long Length { get; private set; }

    /// <summary>Appends one block's new keys and values and returns all of them (owned by the cache).</summary>
    public (Tensor Keys, Tensor Values) Append(int block, Tensor keys, Tensor values)
    {
        Tensor allKeys, allValues;
        if (blocks[block] is { } old)
        {
            allKeys = torch.cat([old.Keys, keys], dim: 2);
            allValues = torch.cat([old.Values, values], dim: 2);
            old.Keys.Dispose();
            old.Values.Dispose();
        }
        else
        {
            allKeys = keys.alias();
            allValues = values.alias();
        }
        allKeys.DetachFromDisposeScope();
        allValues.DetachFromDisposeScope();
        blocks[block] = (allKeys, allValues);
        return (allKeys, allValues);
    }

    /// <summary>A second cache that starts from the same keys and values (shared, not copied) and grows on its own:
    /// one scored prompt serves several continuations.</summary>
    public KeyValueCache Fork()
    {
        var fork = new KeyValueCache(blocks.Length) { Length = Length };
        for (var block = 0; block < blocks.Length; block++)
        {
            if (blocks[block] is not { } entry) continue;
            var keys = entry.Keys.alias();
            var values = entry.Values.alias();
            keys.DetachFromDisposeScope();
            values.DetachFromDisposeScope();
            fork.blocks[block] = (keys, values);
        }
        return fork;
    }

    /// <summary>Called by the model once every block has appended <paramref name="positions"/> new positions.</summary>
    internal void Advance(long positions) => Length += positions;

    public void Dispose()
    {
        foreach (var entry in blocks)
        {
            entry?.Keys.Dispose();
            entry?.Values.Dispose();
        }
        Array.Clear(blocks);
        Length = 0;
    }
}
