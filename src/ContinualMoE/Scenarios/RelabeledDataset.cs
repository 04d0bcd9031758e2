using ContinualMoE.Data;

namespace ContinualMoE.Scenarios;

/// <summary>A dataset seen through a label permutation: label l becomes newLabel[l]; class names are reordered to match.</summary>
public sealed class RelabeledDataset : IImageDataset
{
    private readonly IImageDataset _inner;
    private readonly int[] _newLabelOfOld;

    /// <param name="order">order[newLabel] = old label; must be a permutation of the inner dataset's classes.</param>
    public RelabeledDataset(IImageDataset inner, IReadOnlyList<int> order)
    {
        var problem = ClassOrder.PermutationProblem(order, inner.ClassNames.Count);
        if (problem != null) throw new ContinualMoEException($"class order for '{inner.Name}': {problem}");
        _inner = inner;
        _newLabelOfOld = new int[order.Count];
        for (var newLabel = 0; newLabel < order.Count; newLabel++) _newLabelOfOld[order[newLabel]] = newLabel;
        ClassNames = order.Select(old => inner.ClassNames[old]).ToArray();
    }

    public string Name => _inner.Name;
    public int Count => _inner.Count;
    public IReadOnlyList<string> ClassNames { get; }
    public int GetLabel(int index) => _newLabelOfOld[_inner.GetLabel(index)];
    public RawImage GetImage(int index) => _inner.GetImage(index);
}
