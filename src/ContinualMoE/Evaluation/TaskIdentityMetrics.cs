namespace ContinualMoE.Evaluation;

/// <summary>
/// Task-identity accuracy (percent) for methods that first predict which task a sample belongs to (HiDe-Prompt and
/// similar): how often the predicted task is the true one, averaged over seen tasks like the classification accuracy.
/// </summary>
/// <param name="FinalAverage">Unweighted mean over seen tasks after the last step.</param>
/// <param name="FinalOverSamples">Over all test samples of seen tasks after the last step; null without sizes or counts.</param>
/// <param name="Curve">Unweighted mean after each step.</param>
/// <param name="CurveOverSamples">Over-samples value after each step; null without sizes or counts.</param>
public sealed record TaskIdentityMetrics(
    double FinalAverage,
    double? FinalOverSamples,
    double[] Curve,
    double[]? CurveOverSamples);
