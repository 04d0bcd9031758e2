namespace ContinualMoE.Methods;

/// <summary>
/// Sequential LoRA: one LoRA (Hu et al. 2021) on the frozen backbone trained task after task with nothing against
/// forgetting, and a linear head. The lower bound of the LoRA methods.
/// </summary>
[ContinualMethod("seq-lora", "sequential LoRA fine-tuning of one adapter across tasks (lower bound of the LoRA methods)", Modalities = Data.InputModality.Image | Data.InputModality.Text)]
public sealed class SequentialLora(MethodContext context) : LoraLearner(context, "seq-lora", experts: 1), Training.ITaskAloneEquivalent
{
    public override string Name => "seq-lora";
    public string TaskAloneLearner => PlainLoraAlone;
}
