using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Data.Text;

/// <summary>
/// Batches of tokenised text: each row is prompt then expected output, right-padded to the batch's longest row.
/// <see cref="Batch.Inputs"/> holds the ids [B,T] (int64), <see cref="Batch.AttentionMask"/> the real tokens and
/// <see cref="Batch.TargetMask"/> the output tokens. Padding sits after every row's real tokens, so causal attention
/// never lets a real position see it. The order is seeded as in <see cref="DataLoader"/>: a Fisher–Yates shuffle with
/// <c>new Random(Seeds.Combine(seed, epoch))</c>. Tokenisation happened when the scenario was built, so batches are
/// assembled on the caller's thread.
/// </summary>
public sealed class TextDataLoader(ITextDataset dataset, int batchSize, bool shuffle, int seed, Device? device = null) : IBatchLoader
{
    /// <summary>Id written at padding positions (masked out everywhere; any valid id).</summary>
    public const long PaddingId = 0;

    public int BatchSize => batchSize;
    public int BatchesPerEpoch => (dataset.Count + batchSize - 1) / batchSize;

    public IEnumerable<Batch> Epoch(int epoch)
    {
        var order = Enumerable.Range(0, dataset.Count).ToArray();
        if (shuffle) Seeds.Shuffle(new Random(Seeds.Combine(seed, epoch)), order);
        for (var b = 0; b < BatchesPerEpoch; b++)
            yield return Build(order.AsSpan(b * batchSize, Math.Min(batchSize, order.Length - b * batchSize)).ToArray());
    }

    private Tensor OnDevice(Tensor cpu)
    {
        if (device is null || device.type == DeviceType.CPU) return cpu;
        var moved = cpu.to(device);
        cpu.Dispose();
        return moved;
    }

    private Batch Build(int[] indices)
    {
        var examples = indices.Select(dataset.GetText).ToArray();
        var length = examples.Max(e => e.Prompt.Length + e.Output.Length);
        var ids = new long[indices.Length * length];
        var attention = new bool[indices.Length * length];
        var target = new bool[indices.Length * length];
        long tokens = 0;
        for (var row = 0; row < examples.Length; row++)
        {
            var (prompt, output) = (examples[row].Prompt, examples[row].Output);
            var start = row * length;
            for (var i = 0; i < prompt.Length; i++) { ids[start + i] = prompt[i]; attention[start + i] = true; }
            for (var i = 0; i < output.Length; i++)
            {
                ids[start + prompt.Length + i] = output[i];
                attention[start + prompt.Length + i] = true;
                target[start + prompt.Length + i] = true;
            }
            tokens += prompt.Length + output.Length;
        }
        var labels = indices.Select(i => (long)dataset.GetLabel(i)).ToArray();
        return new Batch(OnDevice(tensor(ids, [indices.Length, length])), OnDevice(tensor(labels)), indices)
        {
            AttentionMask = OnDevice(tensor(attention, [indices.Length, length])),
            TargetMask = OnDevice(tensor(target, [indices.Length, length])),
            ThroughputItems = tokens,
        };
    }
}
