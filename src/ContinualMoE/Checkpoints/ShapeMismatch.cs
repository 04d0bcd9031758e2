namespace ContinualMoE.Checkpoints;

/// <summary>A tensor whose shape in the file differs from the module's parameter or buffer of the same name.</summary>
public sealed record ShapeMismatch(string Name, long[] Expected, long[] Found)
{
    public override string ToString() => $"{Name}: module [{string.Join(", ", Expected)}], file [{string.Join(", ", Found)}]";
}
