namespace ContinualMoE.Cli.Reporting;

/// <summary>Median of a set of figures with its range: how the speed commands summarise repeated rounds, since on a
/// shared VM one measurement drifts by a quarter or more between runs seconds apart.</summary>
internal readonly record struct Spread(double Median, double Min, double Max, int Count)
{
    /// <summary>Median (mean of the middle two for an even count), minimum and maximum.</summary>
    public static Spread Of(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no values", nameof(values));
        var sorted = values.Order().ToArray();
        var middle = sorted.Length / 2;
        var median = sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        return new Spread(median, sorted[0], sorted[^1], sorted.Length);
    }
}
