using ContinualMoE.Data;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// Frozen-backbone features of un-augmented images, per (dataset, index). They never change during a run, so a
/// method that needs them on every evaluation (the query pass of L2P, DualPrompt, CODA-Prompt, Deep L2P++, HiDe's task
/// identity) or on every epoch (HiDe's un-augmented TII training) computes each image's once. Batches are cached whole-or-nothing: a batch with any unseen image is
/// recomputed and stored.
/// </summary>
public sealed class FrozenFeatureCache : IDisposable
{
    private readonly Dictionary<ILabelledDataset, Dictionary<int, Tensor>> rows = new(ReferenceEqualityComparer.Instance);

    public long Hits { get; private set; }
    public long Misses { get; private set; }

    public Tensor GetOrCompute(SampleIdentity samples, Func<Tensor> compute)
    {
        if (!rows.TryGetValue(samples.Dataset, out var cached)) rows[samples.Dataset] = cached = [];
        if (samples.Indices.All(cached.ContainsKey))
        {
            Hits += samples.Indices.Length;
            return stack(samples.Indices.Select(i => cached[i]).ToArray());
        }
        var features = compute();
        for (var r = 0; r < samples.Indices.Length; r++)
        {
            if (cached.Remove(samples.Indices[r], out var old)) old.Dispose();
            cached[samples.Indices[r]] = features[r].detach().clone().DetachFromDisposeScope();
        }
        Misses += samples.Indices.Length;
        return features;
    }

    /// <summary>Drops the features of <paramref name="dataset"/> (a task's training data, not seen again).</summary>
    public void Forget(ILabelledDataset dataset)
    {
        if (!rows.Remove(dataset, out var cached)) return;
        foreach (var t in cached.Values) t.Dispose();
    }

    public void Dispose()
    {
        foreach (var t in rows.Values.SelectMany(d => d.Values)) t.Dispose();
        rows.Clear();
    }
}
