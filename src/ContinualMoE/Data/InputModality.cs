namespace ContinualMoE.Data;

/// <summary>What a run's inputs are, and (as flags) what a method supports (<see cref="Methods.ContinualMethodAttribute.Modalities"/>).</summary>
[Flags]
public enum InputModality
{
    Image = 1,
    Text = 2,
}
