using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>
/// Features gathered per class over a pass through a task's data, handed over stacked per class once the pass ends:
/// the one way SMoPE, HiDe-Prompt (TII and TAP statistics) and SETA collect what their per-class Gaussians
/// (<see cref="GaussianClassStatistics"/>) are fit on. The rows are detached copies kept outside every dispose scope
/// until <see cref="Dispose"/>.
/// </summary>
public sealed class PerClassFeatures : IDisposable
{
    private readonly Dictionary<int, List<Tensor>> rows = [];

    /// <summary>Adds row i of <paramref name="features"/> [n, D] under class <paramref name="labels"/>[i].</summary>
    public void Add(Tensor features, IReadOnlyList<long> labels)
    {
        for (var i = 0; i < labels.Count; i++) Add((int)labels[i], features[i]);
    }

    /// <summary>Adds one feature [D] under class <paramref name="label"/>.</summary>
    public void Add(int label, Tensor feature)
    {
        if (!rows.TryGetValue(label, out var list)) rows[label] = list = [];
        list.Add(feature.detach().clone().DetachFromDisposeScope());
    }

    /// <summary>Each class's features stacked [n, D], classes in the order first seen; the stack is disposed after
    /// <paramref name="use"/> returns.</summary>
    public void ForEachClass(Action<int, Tensor> use)
    {
        foreach (var (label, list) in rows)
        {
            using var stacked = stack(list);
            use(label, stacked);
        }
    }

    /// <summary>Fits every collected class into <paramref name="statistics"/>; a class seen in an earlier task (overlapping
    /// scenarios) adds to its statistics (<see cref="GaussianClassStatistics.Merge"/>).</summary>
    public void MergeInto(GaussianClassStatistics statistics) => ForEachClass(statistics.Merge);

    public void Dispose()
    {
        foreach (var t in rows.Values.SelectMany(list => list)) t.Dispose();
        rows.Clear();
    }
}
