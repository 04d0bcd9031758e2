using System.Globalization;

namespace ContinualMoE.Scenarios;

/// <summary>
/// What defines a scenario (docs/scenarios.md): the kind, the number of tasks, the class order, and the data-scarcity
/// and overlap settings. Everything random is drawn from <see cref="Seed"/>.
/// </summary>
public sealed record ScenarioSettings
{
    /// <summary><see cref="ScenarioKinds.ClassIncremental"/>, <see cref="ScenarioKinds.Overlap"/> or <see cref="ScenarioKinds.Blurry"/>.</summary>
    public string Kind { get; init; } = ScenarioKinds.ClassIncremental;
    public int Tasks { get; init; } = 5;
    /// <summary>Classes in the first task; null sizes all tasks evenly.</summary>
    public int? FirstTaskClasses { get; init; }
    /// <summary>Explicit order of original class ids; null draws a random order from the seed.</summary>
    public IReadOnlyList<int>? ClassOrder { get; init; }
    public bool TaskIncremental { get; init; }
    public int Seed { get; init; }
    /// <summary>At most this many training images per class per task (exactly this many: fewer available is an error); null: all.</summary>
    public int? Shots { get; init; }
    /// <summary>Overlap scenario: fraction rho (0..1) of each later task's classes that were seen in earlier tasks.</summary>
    public double Overlap { get; init; }
    /// <summary>Blurry scenario: fraction (0..1, below 1) of each task's training samples that come from other tasks' classes.</summary>
    public double Blurry { get; init; }

    /// <summary>One-line errors for settings that cannot make a scenario.</summary>
    public void Validate()
    {
        var kind = ScenarioKinds.Parse(Kind);
        if (Tasks < 1) throw new ContinualMoEException($"tasks must be at least 1, got {Tasks}");
        if (Shots is int shots && shots < 1) throw new ContinualMoEException($"shots must be at least 1 (or null for all images), got {shots}");
        if (!(Overlap >= 0 && Overlap <= 1))
            throw new ContinualMoEException($"overlap (rho) must be between 0 and 1, got {Format(Overlap)}");
        if (!(Blurry >= 0 && Blurry < 1))
            throw new ContinualMoEException($"blurry fraction must be at least 0 and below 1, got {Format(Blurry)}");
        if (Overlap != 0 && kind != ScenarioKinds.Overlap)
            throw new ContinualMoEException($"overlap {Format(Overlap)} needs scenario \"{ScenarioKinds.Overlap}\" (scenario is \"{kind}\")");
        if (Blurry != 0 && kind != ScenarioKinds.Blurry)
            throw new ContinualMoEException($"blurry {Format(Blurry)} needs scenario \"{ScenarioKinds.Blurry}\" (scenario is \"{kind}\")");
    }

    private static string Format(double value) => value.ToString(CultureInfo.InvariantCulture);
}
