namespace ContinualMoE.Cli.Reporting;

/// <summary>One cell of <c>bench lm</c> (a precision and a training mode) over its rounds: our tokens/s and PyTorch's,
/// round by round. Each round measures the two back to back, so its ratio compares them on the machine as it was at
/// that moment; the median ratio over rounds (with its range) judges the cell. PyTorch's lists are empty with --no-torch.</summary>
internal sealed record LanguageModelBenchCell(string Precision, string Training,
    IReadOnlyList<double> OursTrain, IReadOnlyList<double> OursGenerate, IReadOnlyList<double> TheirsTrain, IReadOnlyList<double> TheirsGenerate)
{
    public Spread OursTrainSpread => Spread.Of(OursTrain);
    public Spread OursGenerateSpread => Spread.Of(OursGenerate);
    public Spread? TheirsTrainSpread => TheirsTrain.Count == 0 ? null : Spread.Of(TheirsTrain);
    public Spread? TheirsGenerateSpread => TheirsGenerate.Count == 0 ? null : Spread.Of(TheirsGenerate);
    public Spread? TrainRatio => RoundRatios(OursTrain, TheirsTrain);
    public Spread? GenerateRatio => RoundRatios(OursGenerate, TheirsGenerate);

    /// <summary>Ours over theirs in each round, as a median with its range (null without PyTorch's figures).</summary>
    private static Spread? RoundRatios(IReadOnlyList<double> ours, IReadOnlyList<double> theirs)
    {
        if (theirs.Count == 0) return null;
        if (theirs.Count != ours.Count)
            throw new ArgumentException($"rounds are paired: {ours.Count} of ours against {theirs.Count} of PyTorch's");
        return Spread.Of(ours.Zip(theirs, (a, b) => a / b).ToList());
    }
}
