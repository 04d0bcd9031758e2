using ContinualMoE.Training;

namespace ContinualMoE.Methods;

/// <summary>
/// NoRGa (Le et al., "Mixture of Experts Meets Prompt-Based Continual Learning", NeurIPS 2024): prefix tuning read as
/// new experts of the mixture of experts inside self-attention, with the linear gating score of those experts replaced by
/// the non-linear residual gate s + alpha * act(tau * s) (<see cref="Prompts.NonLinearResidualGate"/>). Everything else is
/// the HiDe-Prompt pipeline (<see cref="HidePrompt"/>); only the defaults differ: gate on, TAP learning rate 0.05
/// (the official CIFAR-100 value for NoRGa).
/// </summary>
[ContinualMethod("norga", "NoRGa: HiDe-Prompt with a non-linear residual gate on the prefix experts (NeurIPS 2024)")]
public sealed class Norga(MethodContext context)
    : HidePrompt(context, context.Settings.Bind(Defaults, "norga"), "norga")
{
    public static HideOptions Defaults { get; } = new() { Gate = true, GateActivation = "tanh", TapLearningRate = 0.05 };
}
