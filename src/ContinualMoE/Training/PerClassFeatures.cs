using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>
/// Features gathered per class over a pass through a task's data, handed over per class once the pass ends: the one
/// way SMoPE, HiDe-Prompt (TII and TAP statistics), SETA and SAMoE collect what their per-class Gaussians
/// (<see cref="GaussianClassStatistics"/>) are fit on. Each class keeps its rows of every <see cref="Add(Tensor, IReadOnlyList{long})"/>
/// call as one batch, in order, so the statistics can be fit on all of a class's features at once
/// (<see cref="MergeInto"/>) or batch by batch (<see cref="MergeBatchByBatchInto"/>). The rows are detached copies kept
/// outside every dispose scope until <see cref="Dispose"/>.
/// </summary>
public sealed class PerClassFeatures : IDisposable
{
    private readonly Dictionary<int, List<Tensor>> batches = [];   // per class, in the order first seen: its rows [k, D] of each Add

    /// <summary>Adds row i of <paramref name="features"/> [n, D] under class <paramref name="labels"/>[i].</summary>
    public void Add(Tensor features, IReadOnlyList<long> labels)
    {
        var rowsOfClass = new Dictionary<int, List<long>>();
        for (var i = 0; i < labels.Count; i++)
        {
            if (!rowsOfClass.TryGetValue((int)labels[i], out var indices)) rowsOfClass[(int)labels[i]] = indices = [];
            indices.Add(i);
        }
        using var detached = features.detach();
        foreach (var (label, indices) in rowsOfClass)
        {
            using var index = tensor(indices.ToArray(), device: features.device);
            Keep(label, detached.index_select(0, index));
        }
    }

    /// <summary>Adds one feature [D] under class <paramref name="label"/>.</summary>
    public void Add(int label, Tensor feature)
    {
        using var row = feature.detach().unsqueeze(0);
        Keep(label, row.clone());
    }

    private void Keep(int label, Tensor rows)
    {
        if (!batches.TryGetValue(label, out var list)) batches[label] = list = [];
        list.Add(rows.DetachFromDisposeScope());
    }

    /// <summary>Each class's features stacked [n, D] in the order added, classes in the order first seen; the stack is
    /// disposed after <paramref name="use"/> returns.</summary>
    public void ForEachClass(Action<int, Tensor> use)
    {
        foreach (var (label, list) in batches)
        {
            using var stacked = cat(list, 0);
            use(label, stacked);
        }
    }

    /// <summary>Fits every collected class into <paramref name="statistics"/> from all its features at once; a class seen
    /// in an earlier task (overlapping scenarios) adds to its statistics (<see cref="GaussianClassStatistics.Merge"/>).</summary>
    public void MergeInto(GaussianClassStatistics statistics) => ForEachClass(statistics.Merge);

    /// <summary>Fits every collected class into <paramref name="statistics"/> one added batch at a time (the first sets a new
    /// class, each later one is merged by Chan's pairwise update): the statistics equal <see cref="MergeInto"/>'s up to
    /// float rounding, with the rounding of a fit that runs along the pass.</summary>
    public void MergeBatchByBatchInto(GaussianClassStatistics statistics)
    {
        foreach (var (label, list) in batches)
            foreach (var rows in list)
                statistics.Merge(label, rows);
    }

    public void Dispose()
    {
        foreach (var t in batches.Values.SelectMany(list => list)) t.Dispose();
        batches.Clear();
    }
}
